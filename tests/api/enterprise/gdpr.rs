//! GDPR: everything held about a contact is exported, and erasure removes it everywhere.

use serde_json::json;

use super::setup_subject;
use crate::helpers::*;
use crate::receiver::Receiver;
use crate::webhooks::endpoint;

crate::scenarios![
    gdpr_export_returns_everything_held_about_a_contact,
    gdpr_erasure_removes_personal_data_everywhere,
];

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
    let app = spawn_quiet(store, &[]).await;
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
    app.drain_jobs().await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 1, "one contact.deleted");
    assert_eq!(hits[0].json()["type"], "contact.deleted");
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
