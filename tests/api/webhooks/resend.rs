//! Resending one delivery (`POST /v1/webhooks/{id}/deliveries/{delivery_id}/resend`): a new
//! delivery of the same event to the same endpoint, with the same `webhook-id`; refused for a
//! failed, disabled or channel endpoint; another org's or another endpoint's ids are not found.

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

use super::{contact, endpoint, get_json};
use crate::helpers::*;
use crate::receiver::Receiver;

crate::scenarios![
    a_delivery_is_resent_with_the_same_webhook_id,
    resend_refusals_and_other_orgs_ids,
];

fn resend_path(ep: &str, delivery: &str) -> String {
    format!("/v1/webhooks/{ep}/deliveries/{delivery}/resend")
}

async fn resend(app: &TestApp, key: &str, ep: &str, delivery: &str) -> reqwest::Response {
    app.req(Method::POST, &resend_path(ep, delivery), key)
        .header("idempotency-key", uuid::Uuid::now_v7().to_string())
        .send()
        .await
        .unwrap()
}

/// The endpoint's newest attempt, once there is one.
async fn last_attempt(app: &TestApp, key: &str, ep: &str) -> Value {
    eventually(Duration::from_secs(15), || async {
        let log = get_json(app, &format!("/v1/webhooks/{ep}/deliveries"), key).await;
        log["data"].as_array().unwrap().first().cloned()
    })
    .await
    .expect("an attempt is logged")
}

async fn a_delivery_is_resent_with_the_same_webhook_id(store: Store) {
    let app = spawn_app(store).await;
    let f = app.fixture("Resend").await;
    contact(&app, &f.key).await;
    let first = f.receiver.wait_for(1, Duration::from_secs(15)).await;
    let original = last_attempt(&app, &f.key, &f.endpoint_id).await;
    let delivery = original["delivery_id"].as_str().unwrap().to_owned();

    let idem = "resend-once";
    let send = || {
        app.req(
            Method::POST,
            &resend_path(&f.endpoint_id, &delivery),
            &f.key,
        )
        .header("idempotency-key", idem)
        .send()
    };
    let res = send().await.unwrap();
    let out = json_of(res, 202).await;
    assert_eq!(out["object"], "delivery");
    assert_eq!(out["resent_from"], delivery.as_str());
    assert_ne!(out["id"], delivery.as_str());
    assert_eq!(out["event_id"], original["event_id"]);
    assert_eq!(out["endpoint_id"], f.endpoint_id.as_str());
    assert_eq!(
        (out["status"].as_str(), out["attempts"].as_i64()),
        (Some("pending"), Some(0))
    );
    // A retried request replays the answer instead of resending twice.
    let again = send().await.unwrap();
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(json_of(again, 202).await, out);

    let hits = f.receiver.wait_for(2, Duration::from_secs(15)).await;
    assert_eq!(hits.len(), 2, "sent once more, not twice");
    assert_eq!(hits[1].header("webhook-id"), first[0].header("webhook-id"));
    assert_eq!(hits[1].json(), first[0].json());
    let newest = eventually(Duration::from_secs(15), || async {
        let a = last_attempt(&app, &f.key, &f.endpoint_id).await;
        (a["delivery_id"] == out["id"]).then_some(a)
    })
    .await
    .expect("the resend's attempt is in the log");
    assert!(newest["error"].is_null(), "{newest}");
    let audit = app.audit_actions(&f.org).await;
    assert!(
        audit.contains(&("delivery.resent".into(), "success".into())),
        "{audit:?}"
    );

    // A paused endpoint takes the resend when it is resumed.
    let patch = |status: &'static str| {
        app.req(
            Method::PATCH,
            &format!("/v1/webhooks/{}", f.endpoint_id),
            &f.key,
        )
        .json(&json!({ "status": status }))
        .send()
    };
    json_of(patch("paused").await.unwrap(), 200).await;
    json_of(resend(&app, &f.key, &f.endpoint_id, &delivery).await, 202).await;
    // Nothing must arrive while paused: an absence can only be waited for (the worker runs
    // in-process and would have sent it within a few ms).
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(f.receiver.hits().len(), 2, "held while paused");
    json_of(patch("active").await.unwrap(), 200).await;
    assert_eq!(
        f.receiver.wait_for(3, Duration::from_secs(15)).await.len(),
        3
    );
}

async fn resend_refusals_and_other_orgs_ids(store: Store) {
    let app = spawn_quiet(store, &[]).await;
    let f = app.fixture("Mine").await;
    let other = app.org("Theirs").await;
    app.set_subscription(&other, "active", "full").await;
    let theirs = app.full_key(&other).await;
    let test_ping = |key: String, ep: String| {
        let app = &app;
        async move {
            let t = json_of(
                app.post_as(&format!("/v1/webhooks/{ep}/test"), &key, &json!({}))
                    .await,
                202,
            )
            .await;
            t["delivery_id"].as_str().unwrap().to_owned()
        }
    };
    let mine = test_ping(f.key.clone(), f.endpoint_id.clone()).await;
    let (their_ep, _) = endpoint(&app, &theirs, "https://example.com/theirs", json!({})).await;
    let their_delivery = test_ping(theirs.clone(), their_ep.clone()).await;
    let (second_ep, _) = endpoint(&app, &f.key, "https://example.com/second", json!({})).await;

    // Not found: the other org's endpoint or delivery, a delivery of another endpoint,
    // ids of the wrong kind; and the other org cannot reach ours.
    for (ep, d) in [
        (their_ep.as_str(), their_delivery.as_str()),
        (f.endpoint_id.as_str(), their_delivery.as_str()),
        (second_ep.as_str(), mine.as_str()),
        (f.endpoint_id.as_str(), f.endpoint_id.as_str()),
        (mine.as_str(), mine.as_str()),
        (f.endpoint_id.as_str(), "dlv_nope"),
    ] {
        problem_of(resend(&app, &f.key, ep, d).await, 404, "not_found").await;
    }
    problem_of(
        resend(&app, &theirs, &f.endpoint_id, &mine).await,
        404,
        "not_found",
    )
    .await;

    // A failed or disabled endpoint must be re-enabled first.
    let set_status = |status: &'static str| {
        rampart::store::Q::write("UPDATE webhook_endpoints SET status = $2 WHERE id = $1")
            .bind(f.endpoint_id.clone())
            .bind(status)
    };
    for status in ["failed", "disabled"] {
        set_status(status)
            .execute(&mut app.state.db.clone())
            .await
            .unwrap();
        let p = problem_of(
            resend(&app, &f.key, &f.endpoint_id, &mine).await,
            409,
            "not_resendable",
        )
        .await;
        assert!(p["detail"].as_str().unwrap().contains(status), "{p}");
    }
    set_status("active")
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
    json_of(resend(&app, &f.key, &f.endpoint_id, &mine).await, 202).await;

    // The channel endpoint's deliveries carry messages: not resent this way.
    let (channel, _) = endpoint(
        &app,
        &f.key,
        &Receiver::start().await.url("/c"),
        json!({ "kind": "channel" }),
    )
    .await;
    let on_channel = test_ping(f.key.clone(), channel.clone()).await;
    problem_of(
        resend(&app, &f.key, &channel, &on_channel).await,
        409,
        "not_resendable",
    )
    .await;

    // A deleted endpoint is gone, as everywhere under /v1/webhooks/{id}.
    let deleted = app
        .req(
            Method::DELETE,
            &format!("/v1/webhooks/{}", f.endpoint_id),
            &f.key,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    problem_of(
        resend(&app, &f.key, &f.endpoint_id, &mine).await,
        404,
        "not_found",
    )
    .await;
    app.stop().await;
}
