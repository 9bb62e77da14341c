//! SPEC §5: rate limits, quotas, the billing gate and events, idempotency.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

crate::scenarios![
    a_keys_rate_limit_refuses_with_ratelimit_fields,
    the_org_plan_limits_all_its_keys_together,
    quotas_per_key_and_per_org,
    public_routes_are_limited_per_address_and_route,
    concurrent_duplicates_with_one_idempotency_key_have_one_effect,
    idempotent_replays_and_misuse,
    idempotency_records_expire_and_are_purged,
    billing_gate_refuses_inactive_subscriptions,
    billing_events_are_verified_and_applied_once,
];

/// Scenarios that need a real Redis (ignored without RAMPART_TEST_REDIS_URL).
pub fn redis_scenarios() -> Vec<(&'static str, crate::Scenario)> {
    vec![
        ("instances_sharing_redis_never_over_admit", |s| {
            Box::pin(instances_sharing_redis_never_over_admit(s))
        }),
        ("busy_limits_leased_from_redis_never_over_admit", |s| {
            Box::pin(busy_limits_leased_from_redis_never_over_admit(s))
        }),
        ("a_redis_outage_fails_open_fast_and_recovers", |s| {
            Box::pin(a_redis_outage_fails_open_fast_and_recovers(s))
        }),
    ]
}

async fn set_override(app: &TestApp, org: &Org, which: &str, rate: &str) {
    let mut tx = app.state.db.begin().await.unwrap();
    let which = match which {
        "rate_limit" => rampart::billing::PlanOverride::RateLimit,
        _ => rampart::billing::PlanOverride::Quota,
    };
    rampart::billing::store::set_plan_override(
        &mut tx,
        &rampart::ids::OrgId::parse(&org.id).unwrap(),
        which,
        Some(rampart::config::Rate::parse(rate).unwrap()),
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    app.state
        .plans
        .forget(&rampart::ids::OrgId::parse(&org.id).unwrap());
}

async fn a_keys_rate_limit_refuses_with_ratelimit_fields(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let (_, key) = app
        .key_with(&org, &["contacts"], &["read"], "live", Some("3/min"), None)
        .await;
    for i in 0..3 {
        let res = app.get_as("/v1/contacts", &key).await;
        assert_eq!(res.status(), 200, "request {i}");
        let policy = res.headers()["ratelimit-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        assert!(policy.contains("\"key\";q=3;w=60"), "{policy}");
    }
    let res = app.get_as("/v1/contacts", &key).await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let rl = res.headers()["ratelimit"].to_str().unwrap().to_owned();
    assert!(rl.starts_with("\"key\";r=0;t="), "{rl}");
    let p = problem_of(res, 429, "rate_limited").await;
    assert!(p["detail"].as_str().unwrap().contains("3/min"), "{p}");
    // Another key of the same org is not affected by this key's limit.
    let other = app.key(&org, &["contacts"], &["read"]).await;
    assert_eq!(app.get_as("/v1/contacts", &other).await.status(), 200);
}

async fn the_org_plan_limits_all_its_keys_together(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    set_override(&app, &org, "rate_limit", "4/min").await;
    let k1 = app.key(&org, &["contacts"], &["read"]).await;
    let k2 = app.key(&org, &["contacts"], &["read"]).await;
    let mut admitted = 0;
    for i in 0..8 {
        let k = if i % 2 == 0 { &k1 } else { &k2 };
        if app.get_as("/v1/contacts", k).await.status() == 200 {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 4);
    let other = app.org("Other").await;
    assert_eq!(
        app.get_as(
            "/v1/contacts",
            &app.key(&other, &["contacts"], &["read"]).await
        )
        .await
        .status(),
        200
    );
}

async fn quotas_per_key_and_per_org(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let (_, key) = app
        .key_with(&org, &["contacts"], &["read"], "live", None, Some("2/day"))
        .await;
    assert_eq!(app.get_as("/v1/contacts", &key).await.status(), 200);
    assert_eq!(app.get_as("/v1/contacts", &key).await.status(), 200);
    let res = app.get_as("/v1/contacts", &key).await;
    let retry: u64 = res.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry > 60, "until the window ends: {retry}");
    problem_of(res, 429, "quota_exceeded").await;

    // The org's quota is shared by all its keys: minting keys does not multiply the plan.
    let org2 = app.org("Plan").await;
    set_override(&app, &org2, "quota", "3/day").await;
    let mut admitted = 0;
    for _ in 0..5 {
        let k = app.key(&org2, &["contacts"], &["read"]).await;
        if app.get_as("/v1/contacts", &k).await.status() == 200 {
            admitted += 1;
        }
    }
    assert_eq!(admitted, 3);
}

async fn public_routes_are_limited_per_address_and_route(store: Store) {
    let app = spawn_app_with(
        store,
        &[
            ("RAMPART_PUBLIC_RATE_LIMIT", "3/min"),
            ("RAMPART_TRUSTED_PROXIES", "127.0.0.1/32"),
        ],
    )
    .await;
    let get = |path: &'static str, ip: &'static str| {
        app.client
            .get(app.url(path))
            .header("x-forwarded-for", ip)
            .send()
    };
    for _ in 0..3 {
        assert_eq!(
            get("/openapi.json", "198.51.100.1").await.unwrap().status(),
            200
        );
    }
    let res = get("/openapi.json", "198.51.100.1").await.unwrap();
    assert!(
        res.headers()["ratelimit-policy"]
            .to_str()
            .unwrap()
            .contains("\"ip\";q=3;w=60")
    );
    problem_of(res, 429, "rate_limited").await;
    assert_eq!(
        get("/docs", "198.51.100.1").await.unwrap().status(),
        200,
        "per route"
    );
    assert_eq!(
        get("/openapi.json", "198.51.100.2").await.unwrap().status(),
        200,
        "per address"
    );
    // Probes are never limited.
    for _ in 0..10 {
        assert_eq!(
            get("/health/live", "198.51.100.1").await.unwrap().status(),
            200
        );
    }
}

async fn concurrent_duplicates_with_one_idempotency_key_have_one_effect(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let body = json!({ "external_key": "dup-1", "name": "Once" });
    let mut tasks = Vec::new();
    for _ in 0..20 {
        let req = app
            .req(reqwest::Method::POST, "/v1/contacts", &key)
            .header("idempotency-key", "one-key")
            .json(&body);
        tasks.push(tokio::spawn(async move {
            let res = req.send().await.unwrap();
            let replayed = res.headers().contains_key("idempotent-replayed");
            let status = res.status().as_u16();
            (status, replayed, res.text().await.unwrap())
        }));
    }
    let mut fresh = 0;
    let mut bodies = Vec::new();
    for t in tasks {
        let (status, replayed, text) = t.await.unwrap();
        match (status, replayed) {
            (201, false) => {
                fresh += 1;
                bodies.push(text);
            }
            (201, true) => bodies.push(text),
            (409, _) => assert!(text.contains("idempotency_in_flight"), "{text}"),
            other => panic!("unexpected {other:?}: {text}"),
        }
    }
    assert_eq!(fresh, 1, "exactly one request ran");
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "replays are identical"
    );
    let n = rampart::store::Q::read("SELECT COUNT(*) AS n FROM contacts WHERE org_id = $1")
        .bind(org.id.as_str())
        .fetch_row(&mut app.state.db.clone())
        .await
        .unwrap()
        .get::<i64>("n")
        .unwrap();
    assert_eq!(n, 1);
    let events = rampart::store::Q::read(
        "SELECT COUNT(*) AS n FROM events WHERE org_id = $1 AND type = 'contact.created'",
    )
    .bind(org.id.as_str())
    .fetch_row(&mut app.state.db.clone())
    .await
    .unwrap()
    .get::<i64>("n")
    .unwrap();
    assert_eq!(events, 1);
}

async fn idempotent_replays_and_misuse(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let post = |idem: &str, body: serde_json::Value| {
        app.req(reqwest::Method::POST, "/v1/contacts", &key)
            .header("idempotency-key", idem)
            .json(&body)
            .send()
    };
    let first = post("k1", json!({ "external_key": "a", "name": "A" }))
        .await
        .unwrap();
    assert_eq!(first.status(), 201);
    assert!(!first.headers().contains_key("idempotent-replayed"));
    let first_body = first.text().await.unwrap();
    // Same payload, reformatted: replayed, byte for byte.
    let again = app
        .req(reqwest::Method::POST, "/v1/contacts", &key)
        .header("idempotency-key", "\"k1\"")
        .header("content-type", "application/json")
        .body("{ \"name\": \"A\",   \"external_key\": \"a\" }")
        .send()
        .await
        .unwrap();
    assert_eq!(again.status(), 201);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.text().await.unwrap(), first_body);
    // Same key, other payload.
    problem_of(
        post("k1", json!({ "external_key": "b" })).await.unwrap(),
        422,
        "idempotency_key_reused",
    )
    .await;
    // Malformed keys.
    problem_of(
        post(&"x".repeat(256), json!({ "external_key": "c" }))
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    problem_of(
        post("\"open", json!({ "external_key": "c" }))
            .await
            .unwrap(),
        400,
        "bad_request",
    )
    .await;
    // A failed request releases its key: the corrected retry runs.
    problem_of(
        post("k2", json!({ "external_key": "" })).await.unwrap(),
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(
        post("k2", json!({ "external_key": "fixed" }))
            .await
            .unwrap()
            .status(),
        201
    );
    // Keys are scoped to the org.
    let other = app.org("Other").await;
    let other_key = app.full_key(&other).await;
    let res = app
        .req(reqwest::Method::POST, "/v1/contacts", &other_key)
        .header("idempotency-key", "k1")
        .json(&json!({ "external_key": "zzz" }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    assert!(!res.headers().contains_key("idempotent-replayed"));
}

async fn idempotency_records_expire_and_are_purged(store: Store) {
    let app = spawn_app_with(store, &[("RAMPART_IDEMPOTENCY_TTL", "1s")]).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let post = |body: serde_json::Value| {
        app.req(reqwest::Method::POST, "/v1/contacts", &key)
            .header("idempotency-key", "short-lived")
            .json(&body)
            .send()
    };
    assert_eq!(
        post(json!({ "external_key": "x1" }))
            .await
            .unwrap()
            .status(),
        201
    );
    tokio::time::sleep(Duration::from_millis(1200)).await;
    // The periodic maintenance job may already have purged it; either way it is gone.
    rampart::traffic::idempotency::purge(&app.state.db)
        .await
        .unwrap();
    let left = rampart::store::Q::read("SELECT COUNT(*) AS n FROM idempotency_keys")
        .fetch_row(&mut app.state.db.clone())
        .await
        .unwrap()
        .get::<i64>("n")
        .unwrap();
    assert_eq!(left, 0);
    // The key is free again.
    assert_eq!(
        post(json!({ "external_key": "x2" }))
            .await
            .unwrap()
            .status(),
        201
    );
}

async fn billing_gate_refuses_inactive_subscriptions(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.key(&org, &["contacts"], &["read"]).await;
    let admin = app.token_for(&org, "admin");
    assert_eq!(
        app.get_as("/v1/contacts", &key).await.status(),
        200,
        "trialing passes"
    );
    for status in ["past_due", "canceled"] {
        app.set_subscription(&org, status, "full").await;
        problem_of(
            app.get_as("/v1/contacts", &key).await,
            402,
            "subscription_inactive",
        )
        .await;
    }
    // SPEC order: scope and permission are refused before billing is looked at.
    let other = app.key(&org, &["webhooks"], &["read"]).await;
    problem_of(
        app.get_as("/v1/contacts", &other).await,
        403,
        "insufficient_scope",
    )
    .await;
    // Security actions never depend on billing: keys can still be listed and revoked.
    assert_eq!(app.get_as("/v1/developer/keys", &admin).await.status(), 200);
    assert_eq!(app.get_as("/v1/audit-logs", &admin).await.status(), 200);
    app.set_subscription(&org, "active", "standard").await;
    assert_eq!(app.get_as("/v1/contacts", &key).await.status(), 200);

    let off = spawn_on(
        app.db.clone(),
        &[("RAMPART_BILLING_ENFORCE", "false")],
        Default::default(),
    )
    .await;
    app.set_subscription(&org, "canceled", "standard").await;
    assert_eq!(off.get_as("/v1/contacts", &key).await.status(), 200);
}

fn stripe_signature(secret: &str, t: i64, payload: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, format!("{t}.{payload}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}

fn subscription_event(
    id: &str,
    kind: &str,
    created: i64,
    org: &str,
    status: &str,
    tier: &str,
) -> String {
    json!({
        "id": id, "type": kind, "created": created,
        "data": { "object": {
            "id": "sub_123", "object": "subscription", "status": status,
            "metadata": { "org_id": org },
            "items": { "data": [ { "price": { "lookup_key": tier } } ] }
        } }
    })
    .to_string()
}

async fn billing_events_are_verified_and_applied_once(store: Store) {
    const SECRET: &str = "whsec_billing_test_secret";
    let app = spawn_app_with(store, &[("RAMPART_BILLING_WEBHOOK_SECRET", SECRET)]).await;
    let org = app.org("Acme").await;
    let key = app.key(&org, &["contacts"], &["read"]).await;
    let now = rampart::clock::now_ms() / 1000;
    let send = |payload: String, sig: String| {
        app.client
            .post(app.url("/v1/billing/events"))
            .header("stripe-signature", sig)
            .header("content-type", "application/json")
            .body(payload)
            .send()
    };
    let past_due = subscription_event(
        "evt_1",
        "customer.subscription.updated",
        now - 10,
        &org.id,
        "past_due",
        "standard",
    );
    let out = json_of(
        send(past_due.clone(), stripe_signature(SECRET, now, &past_due))
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(out["applied"], true);
    problem_of(
        app.get_as("/v1/contacts", &key).await,
        402,
        "subscription_inactive",
    )
    .await;
    // The same event again: acknowledged, not applied twice.
    let dup = json_of(
        send(past_due.clone(), stripe_signature(SECRET, now, &past_due))
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(dup["duplicate"], true);
    // Badly signed, stale, missing.
    problem_of(
        send(
            past_due.clone(),
            stripe_signature("whsec_wrong", now, &past_due),
        )
        .await
        .unwrap(),
        400,
        "invalid_signature",
    )
    .await;
    problem_of(
        send(
            past_due.clone(),
            stripe_signature(SECRET, now - 400, &past_due),
        )
        .await
        .unwrap(),
        400,
        "invalid_signature",
    )
    .await;
    let res = app
        .client
        .post(app.url("/v1/billing/events"))
        .body(past_due.clone())
        .send()
        .await
        .unwrap();
    problem_of(res, 400, "invalid_signature").await;
    // A newer activation applies, then an older event arriving late does not undo it.
    let active = subscription_event(
        "evt_2",
        "customer.subscription.updated",
        now - 5,
        &org.id,
        "active",
        "full",
    );
    assert_eq!(
        json_of(
            send(active.clone(), stripe_signature(SECRET, now, &active))
                .await
                .unwrap(),
            200
        )
        .await["applied"],
        true
    );
    assert_eq!(app.get_as("/v1/contacts", &key).await.status(), 200);
    let late = subscription_event(
        "evt_0",
        "customer.subscription.updated",
        now - 60,
        &org.id,
        "canceled",
        "standard",
    );
    let out = json_of(
        send(late.clone(), stripe_signature(SECRET, now, &late))
            .await
            .unwrap(),
        200,
    )
    .await;
    assert_eq!(out["applied"], false);
    assert_eq!(app.get_as("/v1/contacts", &key).await.status(), 200);
    // Deletion cancels.
    let deleted = subscription_event(
        "evt_3",
        "customer.subscription.deleted",
        now,
        &org.id,
        "active",
        "full",
    );
    assert_eq!(
        json_of(
            send(deleted.clone(), stripe_signature(SECRET, now, &deleted))
                .await
                .unwrap(),
            200
        )
        .await["applied"],
        true
    );
    problem_of(
        app.get_as("/v1/contacts", &key).await,
        402,
        "subscription_inactive",
    )
    .await;
    // Unknown org: acknowledged (so Stripe stops retrying), not applied.
    let stray = subscription_event(
        "evt_4",
        "customer.subscription.updated",
        now,
        "org_00000000000000000000000000",
        "active",
        "full",
    );
    assert_eq!(
        json_of(
            send(stray.clone(), stripe_signature(SECRET, now, &stray))
                .await
                .unwrap(),
            200
        )
        .await["applied"],
        false
    );
    assert!(
        app.audit_actions(&org)
            .await
            .iter()
            .any(|a| a.0 == "billing.subscription_updated")
    );

    let unconfigured = spawn_on(app.db.clone(), &[], Default::default()).await;
    let res = unconfigured
        .client
        .post(unconfigured.url("/v1/billing/events"))
        .header("stripe-signature", stripe_signature(SECRET, now, &active))
        .body(active.clone())
        .send()
        .await
        .unwrap();
    problem_of(res, 400, "invalid_signature").await;
}

/// Two instances of one deployment (one database) sharing Redis, both connected to it.
async fn two_instances_on_redis(store: Store, extra: &[(&str, &str)]) -> (TestApp, TestApp) {
    let a = spawn_app_with(store, extra).await;
    let b = spawn_on(a.db.clone(), extra, Default::default()).await;
    for app in [&a, &b] {
        eventually(Duration::from_secs(5), || async {
            app.state
                .limiter
                .redis()
                .unwrap()
                .connected
                .load(std::sync::atomic::Ordering::Acquire)
                .then_some(())
        })
        .await
        .expect("connected to redis");
    }
    (a, b)
}

async fn instances_sharing_redis_never_over_admit(store: Store) {
    let redis = redis_url().expect("RAMPART_TEST_REDIS_URL");
    // A generous timeout: this is about atomicity across instances, and a loaded test machine
    // must not push the limiter into its (per-instance) fallback.
    let extra = [
        ("RAMPART_REDIS_URL", redis.as_str()),
        ("RAMPART_REDIS_TIMEOUT", "2s"),
    ];
    let (a, b) = two_instances_on_redis(store, &extra).await;
    let org = a.org("Acme").await;
    let (_, key) = a
        .key_with(&org, &["contacts"], &["read"], "live", Some("10/min"), None)
        .await;
    let mut tasks = Vec::new();
    for i in 0..40 {
        let app = if i % 2 == 0 { &a } else { &b };
        let req = app.req(reqwest::Method::GET, "/v1/contacts", &key);
        tasks.push(tokio::spawn(async move {
            req.send().await.unwrap().status().as_u16()
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        match t.await.unwrap() {
            200 => admitted += 1,
            429 => {}
            s => panic!("unexpected {s}"),
        }
    }
    assert_eq!(
        admitted, 10,
        "exactly the limit across both instances: admitted {admitted}"
    );
}

/// Fires `total` requests with `key`, 32 at a time, alternately at `a` and `b`; returns how many
/// were admitted and how long it took.
async fn hammer(a: &TestApp, b: &TestApp, key: &str, total: usize) -> (usize, Duration) {
    let started = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for worker in 0..32 {
        let app = if worker % 2 == 0 { a } else { b };
        let (client, url, key) = (app.client.clone(), app.url("/v1/contacts"), key.to_owned());
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut admitted = 0;
            while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < total {
                let res = client.get(&url).bearer_auth(&key).send().await.unwrap();
                match res.status().as_u16() {
                    200 => admitted += 1,
                    429 => {}
                    s => panic!("unexpected {s}"),
                }
            }
            admitted
        }));
    }
    let mut admitted = 0;
    for t in tasks {
        admitted += t.await.unwrap();
    }
    (admitted, started.elapsed())
}

/// Busy limits are served from leases of units taken from Redis (`RAMPART_REDIS_LEASE`): most
/// requests skip the round trip, yet two instances together still never pass a quota or a
/// rate, and near the limit they lose at most a few leased units.
async fn busy_limits_leased_from_redis_never_over_admit(store: Store) {
    let redis = redis_url().expect("RAMPART_TEST_REDIS_URL");
    let extra = [
        ("RAMPART_REDIS_URL", redis.as_str()),
        ("RAMPART_REDIS_TIMEOUT", "2s"),
        ("RAMPART_REDIS_LEASE", "200ms"),
    ];
    let (a, b) = two_instances_on_redis(store, &extra).await;
    let org = a.org("Acme").await;
    // The org's own plan out of the way: only the key's limits bind.
    set_override(&a, &org, "rate_limit", "1000000/s").await;
    set_override(&a, &org, "quota", "1000000000/day").await;
    let leased = || {
        [&a, &b]
            .iter()
            .map(|app| {
                app.state
                    .limiter
                    .stats
                    .leased
                    .load(std::sync::atomic::Ordering::Relaxed)
            })
            .sum::<u64>()
    };

    // A key that reads contacts, with its own rate limit or quota.
    let key_limited = |rate, quota| a.key_with(&org, &["contacts"], &["read"], "live", rate, quota);

    // A quota: never more than its count, and nearly all of it.
    let (_, key) = key_limited(None, Some("600/day")).await;
    let (admitted, _) = hammer(&a, &b, &key, 1500).await;
    assert!(leased() > 0, "busy requests were admitted from leases");
    assert!(admitted <= 600, "admitted {admitted} of a 600/day quota");
    assert!(
        admitted >= 540,
        "admitted only {admitted} of a 600/day quota: leases wasted too much"
    );

    // A rate: never more than the burst plus what accrued while the test ran.
    let before = leased();
    let (_, key) = key_limited(Some("600/min"), None).await;
    let (admitted, took) = hammer(&a, &b, &key, 1500).await;
    let bound = 600 + (took.as_secs_f64() * 10.0).ceil() as usize + 1;
    assert!(leased() > before, "busy requests were admitted from leases");
    assert!(
        admitted <= bound,
        "admitted {admitted} of a 600/min rate in {took:?} (at most {bound})"
    );

    // The count is published on the ops listener's /metrics (set there at scrape time). The
    // tests' in-process instances share one metrics recorder, where a counter keeps the
    // largest value any of them published: at least this instance's own.
    let own = a
        .state
        .limiter
        .stats
        .leased
        .load(std::sync::atomic::Ordering::Relaxed);
    let text = a.metrics().await;
    let published = text
        .lines()
        .find_map(|l| l.strip_prefix("rampart_limiter_leased_total "))
        .and_then(|v| v.trim().parse::<f64>().ok());
    assert!(own > 0);
    assert!(
        published.is_some_and(|p| p >= own as f64),
        "published {published:?}, this instance leased {own}: {text}"
    );
}

/// Starts a private redis-server on a free port; returns the child and its URL.
async fn private_redis(port: u16) -> tokio::process::Child {
    let child = tokio::process::Command::new("redis-server")
        .args([
            "--port",
            &port.to_string(),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ])
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("redis-server is installed (.ci/run installs it)");
    let url = format!("redis://127.0.0.1:{port}");
    eventually(Duration::from_secs(5), || {
        let url = url.clone();
        async move {
            let c = redis::Client::open(url).ok()?;
            c.get_multiplexed_async_connection().await.ok().map(|_| ())
        }
    })
    .await
    .expect("redis-server started");
    child
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn a_redis_outage_fails_open_fast_and_recovers(store: Store) {
    let port = free_port();
    let mut redis = private_redis(port).await;
    let url = format!("redis://127.0.0.1:{port}");
    let app = spawn_app_with(store, &[("RAMPART_REDIS_URL", url.as_str())]).await;
    eventually(Duration::from_secs(5), || async {
        app.state
            .limiter
            .redis()
            .unwrap()
            .connected
            .load(std::sync::atomic::Ordering::Acquire)
            .then_some(())
    })
    .await
    .expect("connected");
    let org = app.org("Acme").await;
    let (_, key) = app
        .key_with(
            &org,
            &["contacts"],
            &["read"],
            "live",
            None,
            Some("100000/day"),
        )
        .await;
    let mut baseline = Duration::ZERO;
    for _ in 0..10 {
        let t = Instant::now();
        assert_eq!(app.get_as("/v1/contacts", &key).await.status(), 200);
        baseline = baseline.max(t.elapsed());
    }
    redis.kill().await.unwrap();
    let _ = redis.wait().await;
    for i in 0..20 {
        let t = Instant::now();
        let res = app.get_as("/v1/contacts", &key).await;
        let took = t.elapsed();
        assert_eq!(res.status(), 200, "request {i} fails open");
        assert!(
            took <= baseline + Duration::from_millis(100),
            "request {i} took {took:?} (baseline {baseline:?})"
        );
    }
    let deep = json_of(
        app.client
            .get(app.ops_url("/health/deep"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    let alerts: Vec<&str> = deep["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(alerts.contains(&"quota_store_degraded"), "{deep}");
    assert_eq!(deep["checks"]["redis:responseTime"][0]["status"], "warn");
    assert_eq!(deep["status"], "warn");
    let metrics = app.metrics().await;
    assert!(
        metrics.contains("rampart_quota_fail_open_total"),
        "counted in a metric"
    );

    // Redis comes back: the shared store is used again.
    let _redis = private_redis(port).await;
    let client = redis::Client::open(url.as_str()).unwrap();
    let used_again = eventually(Duration::from_secs(15), || {
        let client = client.clone();
        let app = &app;
        let key = key.clone();
        async move {
            app.get_as("/v1/contacts", &key).await;
            let mut c = client.get_multiplexed_async_connection().await.ok()?;
            let keys: Vec<String> = redis::cmd("KEYS")
                .arg("rampart:*")
                .query_async(&mut c)
                .await
                .ok()?;
            (!keys.is_empty()).then_some(())
        }
    })
    .await;
    assert!(used_again.is_some(), "limits went back to Redis");
    // Every limiter key expires on its own: Redis never fills up with dead windows.
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("rampart:*")
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(keys.iter().any(|k| k.starts_with("rampart:q:")), "{keys:?}");
    for k in keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&k)
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(ttl > 0, "{k} has no expiry ({ttl})");
    }
}
