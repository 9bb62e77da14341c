//! Contacts: create, read, update, delete, with a unique external key.

use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

crate::scenarios![contacts_crud_with_unique_external_key];

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
