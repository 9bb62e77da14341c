//! SPEC §6: endpoints, Standard Webhooks signing, retries, dead letters, replay, SSRF, workers.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;
use crate::receiver::{Hit, Receiver, Reply, verify};

crate::scenarios![
    deliveries_are_signed_to_the_standard_webhooks_spec,
    a_500_500_200_chain_keeps_one_webhook_id,
    exhausted_budgets_fail_the_endpoint_and_bulk_replay_resolves_everything,
    rotation_signs_with_both_secrets_during_the_overlap,
    ssrf_guard_at_creation_and_at_connect_time,
    gone_disables_the_endpoint_at_once,
    retry_after_is_honoured_but_clamped_and_redirects_are_not_followed,
    an_endpoint_rate_limit_spaces_deliveries,
    test_ping_and_the_delivery_log,
    endpoint_validation_and_management_are_audited,
    two_workers_never_deliver_one_attempt_twice_in_parallel,
    single_dead_letter_replay_and_refusals,
    a_killed_worker_loses_no_delivery,
    a_worker_stopped_with_sigterm_finishes_or_hands_back_its_jobs,
    a_lease_lost_mid_attempt_discards_only_that_outcome_of_a_batch,
];

crate::plain_tests![standard_webhooks_test_vector_verifies_independently];

pub async fn endpoint(app: &TestApp, key: &str, url: &str, extra: Value) -> (String, String) {
    let mut body = json!({ "url": url, "events": ["*"] });
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let ep = json_of(app.post_as("/v1/webhooks", key, &body).await, 201).await;
    (
        ep["id"].as_str().unwrap().to_owned(),
        ep["secret"].as_str().unwrap().to_owned(),
    )
}

pub async fn contact(app: &TestApp, key: &str) -> String {
    let c = json_of(
        app.post_as(
            "/v1/contacts",
            key,
            &json!({ "external_key": uuid::Uuid::now_v7().to_string() }),
        )
        .await,
        201,
    )
    .await;
    c["id"].as_str().unwrap().to_owned()
}

async fn get_json(app: &TestApp, path: &str, key: &str) -> Value {
    json_of(app.get_as(path, key).await, 200).await
}

async fn wait_status(app: &TestApp, key: &str, endpoint: &str, want: &str) {
    eventually(Duration::from_secs(15), || async {
        let e = get_json(app, &format!("/v1/webhooks/{endpoint}"), key).await;
        (e["status"] == want).then_some(())
    })
    .await
    .unwrap_or_else(|| panic!("endpoint never became {want}"));
}

async fn dead_letters(app: &TestApp, key: &str, query: &str) -> Vec<Value> {
    get_json(app, &format!("/v1/dead-letters?limit=100&{query}"), key).await["data"]
        .as_array()
        .unwrap()
        .clone()
}

async fn standard_webhooks_test_vector_verifies_independently() {
    let hit = Hit {
        path: "/".into(),
        headers: {
            let mut h = axum::http::HeaderMap::new();
            h.insert(
                "webhook-id",
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk".parse().unwrap(),
            );
            h.insert("webhook-timestamp", "1649367553".parse().unwrap());
            h.insert(
                "webhook-signature",
                "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
                    .parse()
                    .unwrap(),
            );
            h
        },
        body: br#"{"email":"test@example.com","username":"test_user"}"#
            .to_vec()
            .into(),
        at: Instant::now(),
    };
    assert_eq!(
        verify(&hit, &["whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD"]),
        vec![0]
    );
    // And Rampart's own signer produces exactly that header.
    let secret =
        rampart::webhooks::signing::secret_bytes("whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD").unwrap();
    assert_eq!(
        rampart::webhooks::signing::header(
            &[secret],
            "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
            1_649_367_553,
            &hit.body
        ),
        "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
    );
}

async fn deliveries_are_signed_to_the_standard_webhooks_spec(store: Store) {
    let app = spawn_quiet(store, &[]).await;
    let f = app.fixture("Acme").await;
    let (key, secret, rx) = (&f.key, &f.endpoint_secret, &f.receiver);
    let contact_id = contact(&app, key).await;
    assert_eq!(app.drain_jobs().await, 1, "one delivery job");
    let hits = rx.hits();
    assert_eq!(hits.len(), 1, "delivered by the time the jobs are drained");
    let h = &hits[0];
    assert_eq!(h.path, "/hook");
    assert_eq!(
        verify(h, &[secret]),
        vec![0],
        "signature verifies independently"
    );
    assert!(h.header("webhook-id").starts_with("evt_"));
    let ts: i64 = h.header("webhook-timestamp").parse().unwrap();
    assert!((ts - rampart::clock::now_ms() / 1000).abs() < 30);
    assert_eq!(h.header("content-type"), "application/json");
    let body = h.json();
    assert_eq!(body["type"], "contact.created");
    assert_eq!(body["data"]["id"], contact_id.as_str());
    assert!(body["timestamp"].is_string());
    // A tampered body does not verify.
    let mut forged = h.clone();
    forged.body = br#"{"type":"contact.created","data":{"id":"someone-else"}}"#
        .to_vec()
        .into();
    assert!(verify(&forged, &[secret]).is_empty());
}

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

async fn rotation_signs_with_both_secrets_during_the_overlap(store: Store) {
    let app = spawn_app_with(store, &[("RAMPART_WEBHOOK_SECRET_OVERLAP", "2s")]).await;
    let rx = Receiver::start().await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let (ep, old) = endpoint(&app, &key, &rx.url("/"), json!({})).await;
    let rotated = json_of(
        app.post_as(
            &format!("/v1/webhooks/{ep}/rotate-secret"),
            &key,
            &json!({}),
        )
        .await,
        200,
    )
    .await;
    let new = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new, old);
    assert!(rotated["previous_secret_expires_at"].is_string());
    contact(&app, &key).await;
    let h = &rx.wait_for(1, Duration::from_secs(10)).await[0];
    assert_eq!(h.header("webhook-signature").split(' ').count(), 2);
    assert_eq!(
        verify(h, &[&new, &old]),
        vec![0, 1],
        "both secrets verify during the overlap"
    );
    tokio::time::sleep(Duration::from_millis(2200)).await;
    contact(&app, &key).await;
    let h = &rx.wait_for(2, Duration::from_secs(10)).await[1];
    assert_eq!(
        verify(h, &[&new, &old]),
        vec![0],
        "only the new secret after the overlap"
    );
    let got = get_json(&app, &format!("/v1/webhooks/{ep}"), &key).await;
    assert!(
        got.get("secret").is_none(),
        "secrets are shown on create and rotate only"
    );
}

async fn ssrf_guard_at_creation_and_at_connect_time(store: Store) {
    let app = spawn_app_with(store, &[("RAMPART_WEBHOOK_ALLOW_PRIVATE", "false")]).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    for bad in [
        "https://127.0.0.1/hook",
        "https://10.1.2.3/",
        "https://169.254.169.254/latest/meta-data",
        "https://[::1]/",
        "https://[::ffff:127.0.0.1]/",
        "https://[fd00:ec2::254]/",
        "https://0.0.0.0/",
        "http://example.com/plain-http",
        "https://user:secret@example.com/",
        "ftp://example.com/",
        "not a url",
    ] {
        let res = app
            .post_as(
                "/v1/webhooks",
                &key,
                &json!({ "url": bad, "events": ["*"] }),
            )
            .await;
        let p = problem_of(res, 422, "validation_failed").await;
        assert_eq!(p["errors"][0]["field"], "url", "{bad}: {p}");
    }
    let long = format!("https://example.com/{}", "a".repeat(2100));
    problem_of(
        app.post_as(
            "/v1/webhooks",
            &key,
            &json!({ "url": long, "events": ["*"] }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;

    // A name that resolves to loopback is refused at creation (tests/api/webhook_urls.rs) and
    // again when connecting: here it was configured while it still resolved to a public
    // address (DNS rebinding), which an instance allowing private targets stands in for.
    let rx = Receiver::start().await;
    let url = format!("https://localhost:{}/hook", rx.addr.port());
    let maker = spawn_on(
        app.db.clone(),
        &[],
        rampart::app::ServeOptions { no_worker: true },
    )
    .await;
    let (ep, _) = endpoint(&maker, &key, &url, json!({ "max_retries": 0 })).await;
    contact(&app, &key).await;
    let log = eventually(Duration::from_secs(10), || async {
        let log = get_json(&app, &format!("/v1/webhooks/{ep}/deliveries"), &key).await;
        (!log["data"].as_array().unwrap().is_empty()).then_some(log)
    })
    .await
    .expect("an attempt was logged");
    assert_eq!(log["data"][0]["error_class"], "ssrf_blocked", "{log}");
    assert!(rx.hits().is_empty());

    // An allowlisted host is reachable (and may use plain http), without opening the rest.
    let open = spawn_on(
        app.db.clone(),
        &[
            ("RAMPART_WEBHOOK_ALLOW_PRIVATE", "false"),
            ("RAMPART_WEBHOOK_ALLOWED_TARGETS", "localhost"),
        ],
        Default::default(),
    )
    .await;
    let (_, _) = endpoint(
        &open,
        &key,
        &format!("http://localhost:{}/ok", rx.addr.port()),
        json!({ "events": ["contact.deleted"] }),
    )
    .await;
    problem_of(
        open.post_as(
            "/v1/webhooks",
            &key,
            &json!({ "url": "http://127.0.0.1/", "events": ["*"] }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    let c = contact(&open, &key).await;
    assert_eq!(
        open.delete_as(&format!("/v1/contacts/{c}"), &key)
            .await
            .status(),
        204
    );
    let hits = rx.wait_for(1, Duration::from_secs(10)).await;
    assert!(hits.iter().any(|h| h.path == "/ok"));
}

async fn gone_disables_the_endpoint_at_once(store: Store) {
    let app = spawn_app(store).await;
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(410));
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let (ep, _) = endpoint(
        &app,
        &key,
        &rx.url("/"),
        json!({ "events": ["contact.created"], "max_retries": 5 }),
    )
    .await;
    contact(&app, &key).await;
    wait_status(&app, &key, &ep, "disabled").await;
    assert_eq!(rx.hits().len(), 1, "no retries after 410");
    let dls = dead_letters(&app, &key, "status=open").await;
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
    assert_eq!(log["data"][0]["status_code"], 302);
    tokio::time::sleep(Duration::from_millis(300)).await;
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

async fn test_ping_and_the_delivery_log(store: Store) {
    let app = spawn_app(store).await;
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
    let h = &rx.wait_for(1, Duration::from_secs(10)).await[0];
    assert_eq!(h.json()["type"], "test.ping");
    assert_eq!(h.header("webhook-id"), out["event_id"].as_str().unwrap());
    assert_eq!(verify(h, &[&secret]), vec![0]);
    // A ping goes to that endpoint only, whatever it subscribes to.
    let other = Receiver::start().await;
    endpoint(&app, &key, &other.url("/"), json!({})).await;
    app.post_as(&format!("/v1/webhooks/{ep}/test"), &key, &json!({}))
        .await;
    rx.wait_for(2, Duration::from_secs(10)).await;
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

async fn single_dead_letter_replay_and_refusals(store: Store) {
    let app = spawn_app(store).await;
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
    let dl = eventually(Duration::from_secs(10), || async {
        dead_letters(&app, &key, "status=open")
            .await
            .into_iter()
            .next()
    })
    .await
    .expect("a dead letter");
    let id = dl["id"].as_str().unwrap();
    assert_eq!(
        get_json(&app, &format!("/v1/dead-letters/{id}"), &key).await["id"],
        id
    );
    // Still failing (slowly, so the second request finds it replaying): the replay's outcome
    // reopens the same dead letter.
    rx.set_default(Reply::status(500).delay(Duration::from_millis(500)));
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
    eventually(Duration::from_secs(10), || async {
        let d = get_json(&app, &format!("/v1/dead-letters/{id}"), &key).await;
        (d["status"] == "open" && d["replay_count"] == 1).then_some(())
    })
    .await
    .expect("reopened after a failed replay");
    rx.set_default(Reply::status(204));
    app.post_as(&format!("/v1/dead-letters/{id}/replay"), &key, &json!({}))
        .await;
    eventually(Duration::from_secs(10), || async {
        (get_json(&app, &format!("/v1/dead-letters/{id}"), &key).await["status"] == "resolved")
            .then_some(())
    })
    .await
    .expect("resolved");
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

async fn two_workers_never_deliver_one_attempt_twice_in_parallel(store: Store) {
    let app = spawn_app_with(store, &[("RAMPART_WORKER_CONCURRENCY", "16")]).await;
    let second = spawn_on(
        app.db.clone(),
        &[("RAMPART_WORKER_CONCURRENCY", "16")],
        Default::default(),
    )
    .await;
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(200).delay(Duration::from_millis(20)));
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    endpoint(
        &app,
        &key,
        &rx.url("/"),
        json!({ "events": ["contact.created"] }),
    )
    .await;
    let n = 120;
    let mut tasks = Vec::new();
    for i in 0..n {
        let target = if i % 2 == 0 { &app } else { &second };
        let req = target
            .req(Method::POST, "/v1/contacts", &key)
            .json(&json!({ "external_key": format!("k{i}") }));
        tasks.push(tokio::spawn(async move {
            req.send().await.unwrap().status().as_u16()
        }));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 201);
    }
    let hits = rx.wait_for(n, Duration::from_secs(60)).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let hits_after = rx.hits();
    assert_eq!(hits_after.len(), hits.len(), "no extra deliveries");
    let mut ids: Vec<String> = hits_after.iter().map(|h| h.header("webhook-id")).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), n, "each event delivered once");
    assert_eq!(
        rx.overlaps(),
        0,
        "never two attempts of one delivery at once"
    );
}

/// The worker process is killed with SIGKILL mid-batch; after a restart every event arrives.
async fn a_killed_worker_loses_no_delivery(store: Store) {
    use crate::cli::{sigkill, start_worker};
    let db = std::sync::Arc::new(TestDb::new(store).await);
    // A small worker, a slow receiver: the kill lands while deliveries are in flight.
    let lease = [
        ("RAMPART_JOB_LEASE", "8s"),
        ("RAMPART_WEBHOOK_TIMEOUT", "2s"),
        ("RAMPART_WORKER_CONCURRENCY", "4"),
    ];
    // The API without a worker: jobs are left to the worker processes.
    let api = spawn_on(
        db.clone(),
        &lease,
        rampart::app::ServeOptions { no_worker: true },
    )
    .await;
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(200).delay(Duration::from_millis(300)));
    let org = api.org("Acme").await;
    let key = api.full_key(&org).await;
    endpoint(
        &api,
        &key,
        &rx.url("/"),
        json!({ "events": ["contact.created"] }),
    )
    .await;
    let n = 40;
    for i in 0..n {
        assert_eq!(
            api.post_as(
                "/v1/contacts",
                &key,
                &json!({ "external_key": format!("k{i}") })
            )
            .await
            .status(),
            201
        );
    }
    let env: Vec<(String, String)> = api
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .chain(
            lease
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        )
        .collect();
    let mut worker = start_worker(&env).await;
    rx.wait_for(3, Duration::from_secs(30)).await;
    sigkill(&mut worker).await;
    let delivered_before = rx.hits().len();
    assert!(
        delivered_before < n,
        "killed mid-batch ({delivered_before} of {n} delivered)"
    );
    let _again = start_worker(&env).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut ids: Vec<String> = rx.hits().iter().map(|h| h.header("webhook-id")).collect();
        ids.sort();
        ids.dedup();
        if ids.len() == n {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} events delivered after the restart",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// SIGTERM: the worker finishes what it runs within the shutdown bound and hands the rest back
/// at once — the next worker delivers them long before any lease could have expired.
async fn a_worker_stopped_with_sigterm_finishes_or_hands_back_its_jobs(store: Store) {
    use crate::cli::{sigterm, start_worker};
    let db = std::sync::Arc::new(TestDb::new(store).await);
    let slow = [
        ("RAMPART_JOB_LEASE", "120s"),
        ("RAMPART_WORKER_CONCURRENCY", "2"),
        ("RAMPART_SHUTDOWN_TIMEOUT", "1s"),
    ];
    let api = spawn_on(
        db.clone(),
        &slow,
        rampart::app::ServeOptions { no_worker: true },
    )
    .await;
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(200).delay(Duration::from_millis(2500)));
    let org = api.org("Acme").await;
    let key = api.full_key(&org).await;
    endpoint(
        &api,
        &key,
        &rx.url("/"),
        json!({ "events": ["contact.created"] }),
    )
    .await;
    let n = 6;
    for i in 0..n {
        api.post_as(
            "/v1/contacts",
            &key,
            &json!({ "external_key": format!("k{i}") }),
        )
        .await;
    }
    let env: Vec<(String, String)> = api
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let mut worker = start_worker(&env).await;
    rx.wait_for(2, Duration::from_secs(20)).await;
    sigterm(&worker);
    let status = tokio::time::timeout(Duration::from_secs(15), worker.wait())
        .await
        .expect("stops in time")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    let stopped = count(
        &api,
        "SELECT COUNT(*) AS n FROM workers WHERE stopped_at IS NOT NULL",
        &[],
    )
    .await;
    assert_eq!(stopped, 1, "the worker recorded its stop");
    // Nothing is left leased to the stopped worker.
    let held = count(
        &api,
        "SELECT COUNT(*) AS n FROM jobs WHERE status = 'running'",
        &[],
    )
    .await;
    assert_eq!(held, 0, "leases handed back");
    rx.set_default(Reply::status(200));
    let _next = start_worker(&env).await;
    let started = std::time::Instant::now();
    loop {
        let mut ids: Vec<String> = rx.hits().iter().map(|h| h.header("webhook-id")).collect();
        ids.sort();
        ids.dedup();
        if ids.len() == n {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{} of {n} delivered",
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Delivered attempts are recorded in batches, each behind its own lease fence: when one job's
/// lease is taken over while its attempt is in flight, the others of the batch are recorded and
/// nothing of that one is (its new holder owns it).
async fn a_lease_lost_mid_attempt_discards_only_that_outcome_of_a_batch(store: Store) {
    let app = spawn_app(store).await;
    let rx = Receiver::start().await;
    rx.set_default(Reply::status(200).delay(Duration::from_millis(1500)));
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    endpoint(
        &app,
        &key,
        &rx.url("/"),
        json!({ "events": ["contact.created"] }),
    )
    .await;
    for i in 0..4 {
        let res = app
            .post_as(
                "/v1/contacts",
                &key,
                &json!({ "external_key": format!("k{i}") }),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
    // All four attempts in flight at the slow receiver.
    let running = eventually(Duration::from_secs(10), || async {
        let rows = rampart::store::Q::read("SELECT j.id AS job, d.id AS delivery FROM jobs j JOIN deliveries d ON j.payload LIKE '%' || d.id || '%' WHERE j.status = 'running' AND j.kind = 'webhook.deliver'",
        )
        .fetch_rows(&mut app.state.db.clone())
        .await
        .unwrap();
        (rows.len() == 4).then(|| {
            rows.iter()
                .map(|r| (r.get::<String>("job").unwrap(), r.get::<String>("delivery").unwrap()))
                .collect::<Vec<_>>()
        })
    })
    .await
    .expect("four deliveries running");
    // Another worker takes the first one over (its lease token changes; the lease is long).
    let (stolen_job, stolen) = &running[0];
    rampart::store::Q::write("UPDATE jobs SET lease_token = 'lease_taken_over' WHERE id = $1")
        .bind(stolen_job)
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
    rx.wait_for(4, Duration::from_secs(10)).await;
    for (_, delivery) in &running[1..] {
        let settled = eventually(Duration::from_secs(10), || async {
            (count(
                &app,
                "SELECT COUNT(*) AS n FROM deliveries WHERE id = $1 AND status = 'succeeded'",
                &[delivery],
            )
            .await
                == 1)
                .then_some(())
        })
        .await;
        assert!(settled.is_some(), "delivery {delivery} recorded");
        assert_eq!(
            count(
                &app,
                "SELECT COUNT(*) AS n FROM delivery_attempts WHERE delivery_id = $1",
                &[delivery]
            )
            .await,
            1
        );
    }
    // The stolen one: nothing written, the job still held by its new owner.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) AS n FROM deliveries WHERE id = $1 AND status = 'pending'",
            &[stolen]
        )
        .await,
        1
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) AS n FROM delivery_attempts WHERE delivery_id = $1",
            &[stolen]
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &app,
            "SELECT COUNT(*) AS n FROM jobs WHERE id = $1 AND lease_token = 'lease_taken_over'",
            &[stolen_job]
        )
        .await,
        1
    );
}
