//! Retries: one webhook id across attempts, 410 Gone, Retry-After, redirects, and an
//! endpoint's own rate limit.

use std::time::Duration;

use serde_json::json;

use super::{contact, dead_letters, endpoint, get_json};
use crate::helpers::*;
use crate::receiver::{Receiver, Reply, verify};

crate::scenarios![
    a_500_500_200_chain_keeps_one_webhook_id,
    gone_disables_the_endpoint_at_once,
    retry_after_is_honoured_but_clamped_and_redirects_are_not_followed,
    an_endpoint_rate_limit_spaces_deliveries,
];

async fn a_500_500_200_chain_keeps_one_webhook_id(store: Store) {
    let app = spawn_app(store).await;
    let rx = Receiver::start().await;
    rx.script(vec![Reply::status(500), Reply::status(500)]);
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let (ep, secret) = endpoint(
        &app,
        &key,
        &rx.url("/"),
        json!({ "events": ["contact.created"] }),
    )
    .await;
    contact(&app, &key).await;
    let hits = rx.wait_for(3, Duration::from_secs(15)).await;
    let ids: Vec<String> = hits.iter().map(|h| h.header("webhook-id")).collect();
    assert!(
        ids.iter().all(|i| *i == ids[0]),
        "one webhook-id across retries: {ids:?}"
    );
    for h in &hits {
        assert_eq!(verify(h, &[&secret]), vec![0]);
    }
    assert!(hits[1].at > hits[0].at && hits[2].at > hits[1].at);
    let log = eventually(Duration::from_secs(5), || async {
        let log = get_json(&app, &format!("/v1/webhooks/{ep}/deliveries"), &key).await;
        (log["data"].as_array().unwrap().len() == 3).then_some(log)
    })
    .await
    .expect("three attempts logged");
    let codes: Vec<i64> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|a| a["status_code"].as_i64().unwrap())
        .collect();
    assert_eq!(codes, [500, 500, 200]);
    let attempts: Vec<i64> = log["data"]
        .as_array()
        .unwrap()
        .iter()
        .rev()
        .map(|a| a["attempt"].as_i64().unwrap())
        .collect();
    assert_eq!(attempts, [1, 2, 3]);
    let first = &log["data"][2];
    assert_eq!(first["error_class"], "http_status");
    assert_eq!(first["response_excerpt"], "ok");
    assert!(first["latency_ms"].is_i64() && first["request_id"].is_string());
    assert!(log["data"][0]["error_class"].is_null());
    assert!(dead_letters(&app, &key, "").await.is_empty());
}

async fn gone_disables_the_endpoint_at_once(store: Store) {
    let app = spawn_quiet(store, &[]).await;
    let f = app.fixture("Acme").await;
    let (key, rx) = (&f.key, &f.receiver);
    rx.set_default(Reply::status(410));
    contact(&app, key).await;
    app.drain_jobs().await;
    let e = get_json(&app, &format!("/v1/webhooks/{}", f.endpoint_id), key).await;
    assert_eq!(e["status"], "disabled", "{e}");
    assert_eq!(rx.hits().len(), 1, "no retries after 410");
    let dls = dead_letters(&app, key, "status=open").await;
    assert_eq!(dls.len(), 1);
    assert_eq!(dls[0]["reason"], "endpoint_disabled");
}

async fn retry_after_is_honoured_but_clamped_and_redirects_are_not_followed(store: Store) {
    let app = spawn_app_with(
        store,
        &[
            ("RAMPART_RETRY_BASE_DELAY", "300ms"),
            ("RAMPART_RETRY_MAX_DELAY", "300ms"),
        ],
    )
    .await;
    let rx = Receiver::start().await;
    // An hour-long Retry-After may slow the retry to twice its delay, not to an hour.
    rx.script(vec![Reply::status(503).header("retry-after", "3600")]);
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    endpoint(
        &app,
        &key,
        &rx.url("/a"),
        json!({ "events": ["contact.created"] }),
    )
    .await;
    contact(&app, &key).await;
    let hits = rx.wait_for(2, Duration::from_secs(10)).await;
    let gap = hits[1].at - hits[0].at;
    assert!(gap >= Duration::from_millis(150), "{gap:?}");
    assert!(
        gap <= Duration::from_millis(1500),
        "clamped to at most twice the delay: {gap:?}"
    );

    let rx2 = Receiver::start().await;
    rx2.set_default(Reply::status(302).header("location", &rx.url("/redirected")));
    let (ep, _) = endpoint(
        &app,
        &key,
        &rx2.url("/b"),
        json!({ "events": ["contact.deleted"], "max_retries": 0 }),
    )
    .await;
    let c = contact(&app, &key).await;
    app.delete_as(&format!("/v1/contacts/{c}"), &key).await;
    rx2.wait_for(1, Duration::from_secs(10)).await;
    let log = eventually(Duration::from_secs(5), || async {
        let log = get_json(&app, &format!("/v1/webhooks/{ep}/deliveries"), &key).await;
        (!log["data"].as_array().unwrap().is_empty()).then_some(log)
    })
    .await
    .unwrap();
    // A followed redirect would be requested within the attempt, before it is logged: no wait.
    assert_eq!(log["data"][0]["status_code"], 302);
    assert!(
        !rx.hits().iter().any(|h| h.path == "/redirected"),
        "redirects are not followed"
    );
}

async fn an_endpoint_rate_limit_spaces_deliveries(store: Store) {
    let app = spawn_app(store).await;
    let rx = Receiver::start().await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    endpoint(
        &app,
        &key,
        &rx.url("/"),
        json!({ "events": ["contact.created"], "rate_limit": 2 }),
    )
    .await;
    for _ in 0..6 {
        contact(&app, &key).await;
    }
    let hits = rx.wait_for(6, Duration::from_secs(15)).await;
    let first = hits[0].at;
    let span = hits[5].at - first;
    // 2/s with a burst of 2: six deliveries need at least two seconds.
    assert!(span >= Duration::from_millis(1800), "{span:?}");
    // After the burst, one every half second.
    for w in hits.windows(3) {
        assert!(
            w[2].at - w[0].at >= Duration::from_millis(400),
            "three deliveries within 400 ms"
        );
    }
}
