//! SPEC §8: GDPR export and erasure, org exports, partners.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::Receiver;
use crate::webhooks::endpoint;

crate::scenarios![
    gdpr_export_returns_everything_held_about_a_contact,
    gdpr_erasure_removes_personal_data_everywhere,
    exports_build_in_the_background_and_download_by_expiring_link,
    partners_create_and_list_their_client_orgs,
];

async fn setup_subject(app: &TestApp, key: &str) -> (String, String, String) {
    let c = json_of(app.post_as("/v1/contacts", key, &json!({ "external_key": "subject-1", "name": "Ada Lovelace", "email": "ada@example.com" })).await, 201).await;
    let contact = c["id"].as_str().unwrap().to_owned();
    let conv = json_of(
        app.post_as(
            "/v1/conversations",
            key,
            &json!({ "contact_id": contact, "channel": "sms" }),
        )
        .await,
        201,
    )
    .await;
    let conv = conv["id"].as_str().unwrap().to_owned();
    let m = json_of(
        app.post_as(
            "/v1/messages/inbound",
            key,
            &json!({ "conversation_id": conv, "body": "my secret diary entry" }),
        )
        .await,
        201,
    )
    .await;
    let at = rampart::clock::rfc3339(rampart::clock::now_ms() + 3_600_000);
    json_of(
        app.post_as(
            "/v1/scheduled-messages",
            key,
            &json!({ "conversation_id": conv, "body": "future secret", "send_at": at }),
        )
        .await,
        201,
    )
    .await;
    (contact, conv, m["id"].as_str().unwrap().to_owned())
}

async fn gdpr_export_returns_everything_held_about_a_contact(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let (contact, conv, msg) = setup_subject(&app, &key).await;
    let e = json_of(
        app.get_as("/v1/gdpr/contacts/subject-1/export", &key).await,
        200,
    )
    .await;
    assert_eq!(e["contact"]["id"], contact.as_str());
    assert_eq!(e["contact"]["email"], "ada@example.com");
    assert_eq!(e["conversations"][0]["id"], conv.as_str());
    assert_eq!(e["messages"][0]["id"], msg.as_str());
    assert_eq!(e["messages"][0]["body"], "my secret diary entry");
    assert_eq!(e["scheduled_messages"][0]["body"], "future secret");
    let types: Vec<&str> = e["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["type"].as_str().unwrap())
        .collect();
    for t in [
        "contact.created",
        "conversation.created",
        "message.received",
    ] {
        assert!(types.contains(&t), "{t} missing: {types:?}");
    }
    problem_of(
        app.get_as("/v1/gdpr/contacts/nobody/export", &key).await,
        404,
        "not_found",
    )
    .await;
    let other = app.org("Other").await;
    problem_of(
        app.get_as(
            "/v1/gdpr/contacts/subject-1/export",
            &app.full_key(&other).await,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    // A key without the gdpr scope cannot.
    problem_of(
        app.get_as(
            "/v1/gdpr/contacts/subject-1/export",
            &app.key(&org, &["contacts"], &["read"]).await,
        )
        .await,
        403,
        "insufficient_scope",
    )
    .await;
}

async fn gdpr_erasure_removes_personal_data_everywhere(store: Store) {
    let app = spawn_app(store).await;
    let rx = Receiver::start().await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    endpoint(
        &app,
        &key,
        &rx.url("/"),
        json!({ "events": ["contact.deleted"] }),
    )
    .await;
    let (contact, _, msg) = setup_subject(&app, &key).await;
    let out = json_of(
        app.delete_as("/v1/gdpr/contacts/subject-1", &key).await,
        200,
    )
    .await;
    assert_eq!(out["erased"], true);
    assert_eq!(out["messages_erased"], 1);
    assert!(out["events_redacted"].as_u64().unwrap() >= 3);
    problem_of(
        app.get_as(&format!("/v1/contacts/{contact}"), &key).await,
        404,
        "not_found",
    )
    .await;
    problem_of(
        app.delete_as("/v1/gdpr/contacts/subject-1", &key).await,
        404,
        "not_found",
    )
    .await;
    let m = json_of(app.get_as(&format!("/v1/messages/{msg}"), &key).await, 200).await;
    assert!(m["body"].is_null(), "message content erased, the row kept");
    let sched = json_of(app.get_as("/v1/scheduled-messages", &key).await, 200).await;
    assert_eq!(sched["data"][0]["status"], "canceled");
    assert!(sched["data"][0]["body"].is_null());
    // Nothing of it is left in any stored payload.
    let mut db = app.state.db.clone();
    for (table, col, q) in [
        (
            "events",
            "payload",
            "SELECT COUNT(*) AS n FROM events WHERE org_id = $1 AND (payload LIKE '%Ada Lovelace%' OR payload LIKE '%secret diary%' OR payload LIKE '%ada@example.com%')",
        ),
        (
            "dead_letters",
            "payload",
            "SELECT COUNT(*) AS n FROM dead_letters WHERE org_id = $1 AND (payload LIKE '%Ada Lovelace%' OR payload LIKE '%secret diary%' OR payload LIKE '%ada@example.com%')",
        ),
        (
            "contacts",
            "name",
            "SELECT COUNT(*) AS n FROM contacts WHERE org_id = $1 AND (name LIKE '%Ada Lovelace%' OR name LIKE '%secret diary%' OR name LIKE '%ada@example.com%')",
        ),
        (
            "messages",
            "body",
            "SELECT COUNT(*) AS n FROM messages WHERE org_id = $1 AND (body LIKE '%Ada Lovelace%' OR body LIKE '%secret diary%' OR body LIKE '%ada@example.com%')",
        ),
    ] {
        let q = rampart::store::Q::read(q);
        let n: i64 = q
            .bind(org.id.as_str())
            .fetch_row(&mut db)
            .await
            .unwrap()
            .get("n")
            .unwrap();
        assert_eq!(n, 0, "{table}.{col} still holds personal data");
    }
    let h = &rx.wait_for(1, Duration::from_secs(10)).await[0];
    assert_eq!(h.json()["type"], "contact.deleted");
    assert!(
        app.audit_actions(&org)
            .await
            .iter()
            .any(|a| a.0 == "gdpr.erased")
    );
    // The external key is free again.
    assert_eq!(
        app.post_as(
            "/v1/contacts",
            &key,
            &json!({ "external_key": "subject-1" })
        )
        .await
        .status(),
        201
    );
}

async fn exports_build_in_the_background_and_download_by_expiring_link(store: Store) {
    let app = spawn_app_with(store, &[("RAMPART_EXPORT_LINK_TTL", "2s")]).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    setup_subject(&app, &key).await;
    let (_, test_key) = app
        .key_with(
            &org,
            &["contacts", "exports"],
            &["read", "write"],
            "test",
            None,
            None,
        )
        .await;
    app.post_as(
        "/v1/contacts",
        &test_key,
        &json!({ "external_key": "sandbox-only" }),
    )
    .await;
    let e = json_of(app.post_as("/v1/exports", &key, &json!({})).await, 202).await;
    assert_eq!(e["status"], "pending");
    let id = e["id"].as_str().unwrap().to_owned();
    let ready = eventually(Duration::from_secs(15), || async {
        let e = json_of(app.get_as(&format!("/v1/exports/{id}"), &key).await, 200).await;
        (e["status"] == "ready").then_some(e)
    })
    .await
    .expect("export built");
    let url = ready["download_url"].as_str().unwrap();
    assert!(url.starts_with(&format!("/v1/exports/{id}/download?expires=")));
    let res = app.get(url).await;
    assert_eq!(res.headers()["content-type"], "application/x-ndjson");
    let body = res.text().await.unwrap();
    let lines: Vec<Value> = body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines[0]["type"], "export");
    for t in ["contact", "conversation", "message", "scheduled_message"] {
        assert!(lines.iter().any(|l| l["type"] == t), "{t} missing");
    }
    assert!(
        !body.contains("sandbox-only"),
        "a live export holds no test data"
    );
    assert!(!body.contains("whsec_"), "no secrets");
    // Tampered and expired links are not found.
    let sig_at = url.find("signature=").unwrap() + "signature=".len();
    let mut forged = url.to_owned();
    let first = if &url[sig_at..sig_at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    forged.replace_range(sig_at..sig_at + 1, first);
    problem_of(app.get(&forged).await, 404, "not_found").await;
    problem_of(
        app.get(&format!("/v1/exports/{id}/download")).await,
        404,
        "not_found",
    )
    .await;
    // Valid through its `expires` second, refused after.
    tokio::time::sleep(Duration::from_millis(3200)).await;
    problem_of(app.get(url).await, 404, "not_found").await;
    // A fresh link works again.
    let again = json_of(app.get_as(&format!("/v1/exports/{id}"), &key).await, 200).await;
    assert_eq!(
        app.get(again["download_url"].as_str().unwrap())
            .await
            .status(),
        200
    );
}

async fn partners_create_and_list_their_client_orgs(store: Store) {
    let app = spawn_app(store).await;
    let partner = app.org("Partner").await;
    app.user(
        &partner,
        "pat@partner.example",
        "admin",
        "correct horse battery staple",
    )
    .await;
    let t = app
        .login("pat@partner.example", "correct horse battery staple")
        .await;
    let admin = t["access_token"].as_str().unwrap().to_owned();
    let c = json_of(
        app.post_as(
            "/v1/partners/orgs",
            &admin,
            &json!({ "name": "Client One" }),
        )
        .await,
        201,
    )
    .await;
    assert_eq!(c["parent_org_id"], partner.id.as_str());
    let list = json_of(app.get_as("/v1/partners/orgs", &admin).await, 200).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    // The partner's admin owns the client org and can log in to it.
    let res = app
        .post_json("/v1/auth/login", &json!({ "email": "pat@partner.example", "password": "correct horse battery staple", "org_id": c["id"] }))
        .await;
    let t2 = json_of(res, 200).await;
    assert_eq!(t2["org_id"], c["id"]);
    assert_eq!(t2["role"], "owner");
    // Several orgs now: login without org_id asks which.
    let res = app
        .post_json(
            "/v1/auth/login",
            &json!({ "email": "pat@partner.example", "password": "correct horse battery staple" }),
        )
        .await;
    problem_of(res, 422, "validation_failed").await;
    let other = app.org("Other").await;
    let theirs = json_of(
        app.get_as("/v1/partners/orgs", &app.token_for(&other, "admin"))
            .await,
        200,
    )
    .await;
    assert!(theirs["data"].as_array().unwrap().is_empty());
    problem_of(
        app.post_as(
            "/v1/partners/orgs",
            &app.token_for(&partner, "developer"),
            &json!({ "name": "x" }),
        )
        .await,
        403,
        "insufficient_permission",
    )
    .await;
    problem_of(
        app.get_as(
            "/v1/partners/orgs",
            &app.key(&partner, &["contacts"], &["read"]).await,
        )
        .await,
        403,
        "insufficient_scope",
    )
    .await;
}
