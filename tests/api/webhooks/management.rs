//! Endpoint management: validation, audit, the test ping and the delivery log.

use reqwest::Method;
use serde_json::json;

use super::{endpoint, get_json};
use crate::helpers::*;
use crate::receiver::{Receiver, verify};

crate::scenarios![
    test_ping_and_the_delivery_log,
    endpoint_validation_and_management_are_audited,
];

async fn test_ping_and_the_delivery_log(store: Store) {
    let app = spawn_quiet(store, &[]).await;
    let rx = Receiver::start().await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let (ep, secret) = endpoint(
        &app,
        &key,
        &rx.url("/"),
        json!({ "events": ["message.sent"] }),
    )
    .await;
    let out = json_of(
        app.post_as(&format!("/v1/webhooks/{ep}/test"), &key, &json!({}))
            .await,
        202,
    )
    .await;
    app.drain_jobs().await;
    let hits = rx.hits();
    assert_eq!(hits.len(), 1);
    let h = &hits[0];
    assert_eq!(h.json()["type"], "test.ping");
    assert_eq!(h.header("webhook-id"), out["event_id"].as_str().unwrap());
    assert_eq!(verify(h, &[&secret]), vec![0]);
    // A ping goes to that endpoint only, whatever it subscribes to.
    let other = Receiver::start().await;
    endpoint(&app, &key, &other.url("/"), json!({})).await;
    app.post_as(&format!("/v1/webhooks/{ep}/test"), &key, &json!({}))
        .await;
    app.drain_jobs().await;
    assert_eq!(rx.hits().len(), 2);
    assert!(other.hits().is_empty());
    problem_of(
        app.post_as("/v1/webhooks/ep_nope/test", &key, &json!({}))
            .await,
        404,
        "not_found",
    )
    .await;
}

async fn endpoint_validation_and_management_are_audited(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    // A value of the wrong type or outside an enumeration is refused as the body is parsed.
    let p = problem_of(
        app.post_as(
            "/v1/webhooks",
            &key,
            &json!({ "url": "https://example.com/", "events": ["message.*"], "kind": "fax" }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "kind", "{p}");
    // Every rule a well-typed body breaks is reported at once.
    let p = problem_of(
        app.post_as("/v1/webhooks", &key, &json!({ "url": "https://example.com/", "events": ["message.*", "nope.*", "message.exploded"], "max_retries": 99, "rate_limit": 0 })).await,
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
    assert_eq!(
        fields,
        ["events[1]", "events[2]", "max_retries", "rate_limit"],
        "{p}"
    );
    problem_of(
        app.post_as(
            "/v1/webhooks",
            &key,
            &json!({ "url": "https://example.com/", "events": [] }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let (ep, _) = endpoint(
        &app,
        &key,
        "https://example.com/hook",
        json!({ "description": "main" }),
    )
    .await;
    let list = get_json(&app, "/v1/webhooks", &key).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert!(!list.to_string().contains("whsec_"), "secrets never listed");
    let res = app
        .req(Method::PATCH, &format!("/v1/webhooks/{ep}"), &key)
        .json(&json!({ "events": ["contact.*"], "description": null, "status": "paused" }))
        .send()
        .await
        .unwrap();
    let e = json_of(res, 200).await;
    assert_eq!(e["events"], json!(["contact.*"]));
    assert!(e["description"].is_null());
    assert_eq!(e["status"], "paused");
    let res = app
        .req(Method::PATCH, &format!("/v1/webhooks/{ep}"), &key)
        .json(&json!({ "status": "failed" }))
        .send()
        .await
        .unwrap();
    problem_of(res, 422, "validation_failed").await;
    // One channel endpoint per org.
    endpoint(
        &app,
        &key,
        "https://example.com/channel",
        json!({ "kind": "channel" }),
    )
    .await;
    problem_of(
        app.post_as(
            "/v1/webhooks",
            &key,
            &json!({ "url": "https://example.com/c2", "kind": "channel" }),
        )
        .await,
        409,
        "conflict",
    )
    .await;
    assert_eq!(
        app.delete_as(&format!("/v1/webhooks/{ep}"), &key)
            .await
            .status(),
        204
    );
    problem_of(
        app.get_as(&format!("/v1/webhooks/{ep}"), &key).await,
        404,
        "not_found",
    )
    .await;
    let actions = app.audit_actions(&org).await;
    for a in [
        "webhook_endpoint.created",
        "webhook_endpoint.paused",
        "webhook_endpoint.deleted",
    ] {
        assert!(actions.iter().any(|x| x.0 == a), "{a}: {actions:?}");
    }
}
