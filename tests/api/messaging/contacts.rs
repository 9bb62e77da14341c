//! Contacts: create, read, update, delete, with a unique external key.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

crate::scenarios![
    contacts_crud_with_unique_external_key,
    concurrent_reads_each_get_their_own_tenants_contact,
];

async fn contacts_crud_with_unique_external_key(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let c = json_of(
        app.post_as("/v1/contacts", &key, &json!({ "external_key": "cust-1", "name": "Ada", "email": "ada@example.com", "phone": "+14155550123", "attributes": { "plan": "pro" } })).await,
        201,
    )
    .await;
    let id = c["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("con_"));
    assert_eq!(c["object"], "contact");
    assert_eq!(c["attributes"]["plan"], "pro");
    problem_of(
        app.post_as("/v1/contacts", &key, &json!({ "external_key": "cust-1" }))
            .await,
        409,
        "conflict",
    )
    .await;
    let p = problem_of(
        app.post_as(
            "/v1/contacts",
            &key,
            &json!({ "external_key": "", "email": "not-an-email", "phone": "call me" }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let fields: Vec<&str> = p["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["external_key", "email", "phone"]);
    let res = app
        .req(Method::PATCH, &format!("/v1/contacts/{id}"), &key)
        .json(&json!({ "name": null, "email": "new@example.com" }))
        .send()
        .await
        .unwrap();
    let patched = json_of(res, 200).await;
    assert!(patched["name"].is_null());
    assert_eq!(patched["email"], "new@example.com");
    assert_eq!(patched["phone"], "+14155550123");
    let found = json_of(
        app.get_as("/v1/contacts?external_key=cust-1", &key).await,
        200,
    )
    .await;
    assert_eq!(found["data"][0]["id"], id.as_str());
    assert_eq!(
        app.delete_as(&format!("/v1/contacts/{id}"), &key)
            .await
            .status(),
        204
    );
    problem_of(
        app.get_as(&format!("/v1/contacts/{id}"), &key).await,
        404,
        "not_found",
    )
    .await;
    problem_of(
        app.delete_as(&format!("/v1/contacts/{id}"), &key).await,
        404,
        "not_found",
    )
    .await;
    // The external key is free again after deletion.
    assert_eq!(
        app.post_as("/v1/contacts", &key, &json!({ "external_key": "cust-1" }))
            .await
            .status(),
        201
    );
}

/// `GET /v1/contacts/{id}` reads are batched under concurrency (src/contacts/reads.rs): 240
/// reads at once, from two orgs and a sandbox key, each gets its own tenant's contact, another
/// tenant's id is 404, an erased contact is 404, and a contact created just before is found.
async fn concurrent_reads_each_get_their_own_tenants_contact(store: Store) {
    let app = spawn_app(store).await;
    let (a, b) = (app.org("A").await, app.org("B").await);
    let (key_a, key_b) = (app.full_key(&a).await, app.full_key(&b).await);
    let (_, key_a_test) = app
        .key_with(&a, &["contacts"], &["read", "write"], "test", None, None)
        .await;
    let mut contacts = Vec::new();
    for (key, n) in [(&key_a, 20), (&key_b, 20), (&key_a_test, 20)] {
        for i in 0..n {
            let c = json_of(
                app.post_as(
                    "/v1/contacts",
                    key,
                    &json!({ "external_key": format!("k-{i}") }),
                )
                .await,
                201,
            )
            .await;
            contacts.push((key.clone(), c["id"].as_str().unwrap().to_owned()));
        }
    }
    let erased = contacts[0].1.clone();
    let deleted = app
        .req(Method::DELETE, &format!("/v1/contacts/{erased}"), &key_a)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    // Every key asks for every contact, all at once, twice over.
    let keys = [&key_a, &key_b, &key_a_test];
    let shared = &app;
    let mut asks = Vec::new();
    for _ in 0..2 {
        for (owner, id) in &contacts {
            for key in keys {
                let want = if key == owner && *id != erased {
                    200
                } else {
                    404
                };
                asks.push(async move {
                    let r = shared.get_as(&format!("/v1/contacts/{id}"), key).await;
                    let status = r.status().as_u16();
                    let body: serde_json::Value = r.json().await.unwrap();
                    (id, want, status, body)
                });
            }
        }
    }
    for (id, want, status, body) in futures_util::future::join_all(asks).await {
        assert_eq!(status, want, "{id}: {body}");
        if want == 200 {
            assert_eq!(body["id"], id.as_str());
        }
    }
    // A contact created right before its read is found.
    for i in 0..10 {
        let c = json_of(
            app.post_as(
                "/v1/contacts",
                &key_b,
                &json!({ "external_key": format!("late-{i}") }),
            )
            .await,
            201,
        )
        .await;
        let id = c["id"].as_str().unwrap();
        let got = json_of(app.get_as(&format!("/v1/contacts/{id}"), &key_b).await, 200).await;
        assert_eq!(got["id"], id);
    }
    app.stop().await;
}
