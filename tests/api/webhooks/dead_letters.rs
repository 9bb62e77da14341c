//! Dead letters: exhausted budgets fail the endpoint, bulk and single replay.

use std::time::Duration;

use reqwest::Method;
use serde_json::json;

use super::{contact, dead_letters, endpoint, get_json, wait_status};
use crate::helpers::*;
use crate::receiver::{Hit, Receiver, Reply};

crate::scenarios![
    exhausted_budgets_fail_the_endpoint_and_bulk_replay_resolves_everything,
    single_dead_letter_replay_and_refusals,
];

async fn exhausted_budgets_fail_the_endpoint_and_bulk_replay_resolves_everything(store: Store) {
    let app = spawn_app_with(store, &[("RAMPART_ENDPOINT_FAILURE_THRESHOLD", "2")]).await;
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(500));
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let (ep, _) = endpoint(
        &app,
        &key,
        &rx.url("/"),
        json!({ "events": ["contact.created"], "max_retries": 1 }),
    )
    .await;
    contact(&app, &key).await;
    contact(&app, &key).await;
    // Two deliveries × (1 attempt + 1 retry), then both are dead letters and the endpoint fails.
    rx.wait_for(4, Duration::from_secs(15)).await;
    wait_status(&app, &key, &ep, "failed").await;
    let dls = dead_letters(&app, &key, "status=open").await;
    assert_eq!(dls.len(), 2, "{dls:?}");
    assert!(
        dls.iter()
            .all(|d| d["reason"] == "retries_exhausted" && d["attempts"] == 2)
    );
    assert!(
        dls[0]["payload"]["data"]["id"].is_string(),
        "the failed payload is kept"
    );
    let e = get_json(&app, &format!("/v1/webhooks/{ep}"), &key).await;
    assert!(e["status_reason"].as_str().unwrap().contains("in a row"));

    // While failed it receives nothing: new events go straight to the dead-letter queue.
    let before = rx.hits().len();
    contact(&app, &key).await;
    let dls = eventually(Duration::from_secs(5), || async {
        let d = dead_letters(&app, &key, "status=open").await;
        (d.len() == 3).then_some(d)
    })
    .await
    .expect("third dead letter");
    assert_eq!(dls[0]["reason"], "endpoint_failed");
    // The worker runs in its own time here (retries are what is tested): a moment for a
    // stray delivery to show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(rx.hits().len(), before, "nothing sent to a failed endpoint");

    // Replay is refused until the endpoint is re-enabled.
    let res = app
        .post_as(
            "/v1/dead-letters/replay",
            &key,
            &json!({ "endpoint_id": ep }),
        )
        .await;
    let out = json_of(res, 202).await;
    assert_eq!(out["replayed"], 0);
    assert_eq!(out["skipped"].as_array().unwrap().len(), 3);

    rx.set_default(Reply::status(200));
    let res = app
        .req(Method::PATCH, &format!("/v1/webhooks/{ep}"), &key)
        .json(&json!({ "status": "active" }))
        .send()
        .await
        .unwrap();
    assert_eq!(json_of(res, 200).await["status"], "active");
    let out = json_of(
        app.post_as(
            "/v1/dead-letters/replay",
            &key,
            &json!({ "endpoint_id": ep }),
        )
        .await,
        202,
    )
    .await;
    assert_eq!(out["replayed"], 3);
    assert_eq!(out["has_more"], false);
    eventually(Duration::from_secs(15), || async {
        let open = dead_letters(&app, &key, "status=open").await.len()
            + dead_letters(&app, &key, "status=replaying").await.len();
        (open == 0).then_some(())
    })
    .await
    .expect("every replay resolved");
    let resolved = dead_letters(&app, &key, "status=resolved").await;
    assert_eq!(resolved.len(), 3);
    assert!(
        resolved
            .iter()
            .all(|d| d["resolved_at"].is_string() && d["replay_count"] == 1)
    );
    // The three events arrived, each with its original webhook-id.
    let ok: Vec<Hit> = rx.hits().into_iter().skip(before).collect();
    let mut ids: Vec<String> = ok.iter().map(|h| h.header("webhook-id")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 3);
    let actions = app.audit_actions(&org).await;
    for a in [
        "webhook_endpoint.failed",
        "webhook_endpoint.enabled",
        "dead_letter.bulk_replayed",
    ] {
        assert!(
            actions.iter().any(|x| x.0 == a),
            "{a} not audited: {actions:?}"
        );
    }
}

async fn single_dead_letter_replay_and_refusals(store: Store) {
    let app = spawn_quiet(store, &[]).await;
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(500));
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    endpoint(
        &app,
        &key,
        &rx.url("/"),
        json!({ "events": ["contact.created"], "max_retries": 0 }),
    )
    .await;
    contact(&app, &key).await;
    app.drain_jobs().await;
    let dl = dead_letters(&app, &key, "status=open")
        .await
        .into_iter()
        .next()
        .expect("a dead letter");
    let id = dl["id"].as_str().unwrap();
    assert_eq!(
        get_json(&app, &format!("/v1/dead-letters/{id}"), &key).await["id"],
        id
    );
    // Still failing: the replay's outcome reopens the same dead letter. No worker runs until
    // the jobs are drained, so the second request finds it replaying.
    let out = json_of(
        app.post_as(&format!("/v1/dead-letters/{id}/replay"), &key, &json!({}))
            .await,
        202,
    )
    .await;
    assert_eq!(out["dead_letter"]["status"], "replaying");
    problem_of(
        app.post_as(&format!("/v1/dead-letters/{id}/replay"), &key, &json!({}))
            .await,
        409,
        "not_replayable",
    )
    .await;
    app.drain_jobs().await;
    let d = get_json(&app, &format!("/v1/dead-letters/{id}"), &key).await;
    assert!(
        d["status"] == "open" && d["replay_count"] == 1,
        "reopened after a failed replay: {d}"
    );
    rx.set_default(Reply::status(204));
    app.post_as(&format!("/v1/dead-letters/{id}/replay"), &key, &json!({}))
        .await;
    app.drain_jobs().await;
    let d = get_json(&app, &format!("/v1/dead-letters/{id}"), &key).await;
    assert_eq!(d["status"], "resolved", "{d}");
    assert_eq!(
        dead_letters(&app, &key, "").await.len(),
        1,
        "no second dead letter"
    );
    problem_of(
        app.post_as("/v1/dead-letters/dl_nope/replay", &key, &json!({}))
            .await,
        404,
        "not_found",
    )
    .await;
    problem_of(
        app.get_as("/v1/dead-letters?status=weird", &key).await,
        400,
        "bad_request",
    )
    .await;
}
