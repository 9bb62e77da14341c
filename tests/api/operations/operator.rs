//! Operator actions: guarded, validated and audited.

use reqwest::Method;
use serde_json::json;

use super::operator;
use crate::helpers::*;

crate::scenarios![operator_actions_are_guarded_validated_and_audited];

async fn operator_actions_are_guarded_validated_and_audited(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let admin = app.token_for(&org, "admin");
    // Tier full is required.
    problem_of(
        operator(&app, &admin, "pause_endpoint", json!({})).await,
        403,
        "tier_insufficient",
    )
    .await;
    app.set_subscription(&org, "active", "full").await;
    problem_of(
        operator(
            &app,
            &app.token_for(&org, "developer"),
            "pause_endpoint",
            json!({}),
        )
        .await,
        403,
        "insufficient_scope",
    )
    .await;
    let key = app.full_key(&org).await;
    problem_of(
        operator(&app, &key, "pause_endpoint", json!({})).await,
        403,
        "insufficient_scope",
    )
    .await;
    let res = app
        .req(Method::POST, "/v1/operator/actions", &admin)
        .json(&json!({ "action": "pause_endpoint", "params": {} }))
        .send()
        .await
        .unwrap();
    problem_of(res, 400, "idempotency_key_required").await;
    let p = problem_of(
        operator(&app, &admin, "reboot_universe", json!({})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "action");
    let p = problem_of(
        operator(&app, &admin, "pause_endpoint", json!({})).await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "params.endpoint_id");
    // A malformed id in a body is a 422; a well-formed unknown one a 404.
    problem_of(
        operator(
            &app,
            &admin,
            "pause_endpoint",
            json!({ "endpoint_id": "ep_nope" }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    problem_of(
        operator(
            &app,
            &admin,
            "pause_endpoint",
            json!({ "endpoint_id": rampart::ids::EndpointId::new() }),
        )
        .await,
        404,
        "not_found",
    )
    .await;

    let ep = json_of(
        app.post_as(
            "/v1/webhooks",
            &key,
            &json!({ "url": "https://example.com/h", "events": ["*"] }),
        )
        .await,
        201,
    )
    .await;
    let ep_id = ep["id"].as_str().unwrap();
    let res = app
        .req(Method::POST, "/v1/operator/actions", &admin)
        .header("idempotency-key", "op-1")
        .header("x-request-id", "op-request-1")
        .json(&json!({ "action": "pause_endpoint", "params": { "endpoint_id": ep_id } }))
        .send()
        .await
        .unwrap();
    let out = json_of(res, 200).await;
    assert_eq!(out["result"]["status"], "paused");
    let out = json_of(
        operator(
            &app,
            &admin,
            "resume_endpoint",
            json!({ "endpoint_id": ep_id }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(out["result"]["status"], "active");
    let out = json_of(
        operator(
            &app,
            &admin,
            "replay_dead_letters",
            json!({ "endpoint_id": ep_id }),
        )
        .await,
        200,
    )
    .await;
    assert_eq!(out["result"]["replayed"], 0);
    // Incidents are the platform org's.
    let p = problem_of(
        operator(
            &app,
            &admin,
            "open_incident",
            json!({ "title": "x", "message": "y" }),
        )
        .await,
        403,
        "insufficient_scope",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("platform"));
    let row = rampart::store::Q::read("SELECT actor_type, actor_id, action, target_id, request_id FROM audit_logs WHERE request_id = 'op-request-1'")
        .fetch_row(&mut app.state.db.clone())
        .await
        .unwrap();
    assert_eq!(row.get::<String>("action").unwrap(), "operator.action");
    assert_eq!(row.get::<String>("actor_type").unwrap(), "user");
    assert_eq!(
        row.get::<Option<String>>("target_id").unwrap().as_deref(),
        Some(ep_id)
    );
    let actions = app.audit_actions(&org).await;
    assert!(
        actions.contains(&("operator.action".into(), "denied".into())),
        "{actions:?}"
    );
}
