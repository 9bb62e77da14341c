//! `GET /v1/webhooks/delivery-stats`: attempts per hour (succeeded, failed) of one tenant, each
//! in the hour it was made, sandbox attempts counted as delivered; each endpoint's success rate;
//! the endpoints that are not active or whose latest attempt failed. The counts are kept per
//! endpoint and hour as attempts are logged (`delivery_hourly`): they must match the log.

use std::collections::HashMap;

use serde_json::{Value, json};

use super::{contact, endpoint, get_json};
use crate::helpers::*;
use crate::receiver::{Receiver, Reply};

crate::scenarios![
    attempts_are_counted_per_hour_and_failing_endpoints_listed,
    stats_are_per_tenant_and_hours_are_bounded,
    counts_match_the_log_after_concurrent_deliveries,
    two_workers_count_every_attempt_once,
    the_upgrade_counts_the_attempts_already_logged,
    the_counts_read_indexes_at_100_000_attempts,
];

const HOUR_MS: i64 = 3_600_000;

/// (succeeded, failed) per bucket start, and the sums.
fn per_hour(stats: &Value) -> (HashMap<String, (i64, i64)>, (i64, i64)) {
    let mut by = HashMap::new();
    let mut sum = (0, 0);
    for b in stats["buckets"].as_array().unwrap() {
        let (ok, failed) = (
            b["succeeded"].as_i64().unwrap(),
            b["failed"].as_i64().unwrap(),
        );
        by.insert(b["hour"].as_str().unwrap().to_owned(), (ok, failed));
        sum = (sum.0 + ok, sum.1 + failed);
    }
    (by, sum)
}

/// The hour (its start, as the API writes it) of every attempt of `endpoint`.
async fn attempt_hours(app: &TestApp, endpoint: &str) -> Vec<String> {
    let times: Vec<i64> =
        rampart::store::Q::read("SELECT created_at FROM delivery_attempts WHERE endpoint_id = $1")
            .bind(endpoint)
            .fetch_column(&mut app.state.db.clone())
            .await
            .unwrap();
    times
        .into_iter()
        .map(|t| rampart::clock::rfc3339(t / HOUR_MS * HOUR_MS))
        .collect()
}

async fn attempts_are_counted_per_hour_and_failing_endpoints_listed(store: Store) {
    let app = spawn_quiet(store, &[]).await;
    let org = app.org("Stats").await;
    app.set_subscription(&org, "active", "full").await;
    let key = app.full_key(&org).await;
    let good = Receiver::start().await;
    let bad = Receiver::start().await;
    bad.set_default(Reply::status(500));
    // Fails the first delivery it gets, then takes the rest.
    let flaky = Receiver::start().await;
    flaky.script(vec![Reply::status(500)]);
    let only_contacts = |extra: Value| {
        let mut e = json!({ "events": ["contact.created"] });
        for (k, v) in extra.as_object().unwrap() {
            e[k] = v.clone();
        }
        e
    };
    let (ok_ep, _) = endpoint(&app, &key, &good.url("/ok"), only_contacts(json!({}))).await;
    let (bad_ep, _) = endpoint(
        &app,
        &key,
        &bad.url("/bad"),
        only_contacts(json!({ "max_retries": 0 })),
    )
    .await;
    let (flaky_ep, _) = endpoint(
        &app,
        &key,
        &flaky.url("/flaky"),
        only_contacts(json!({ "max_retries": 0 })),
    )
    .await;
    let (paused_ep, _) = endpoint(&app, &key, &good.url("/paused"), only_contacts(json!({}))).await;
    json_of(
        app.req(
            reqwest::Method::PATCH,
            &format!("/v1/webhooks/{paused_ep}"),
            &key,
        )
        .json(&json!({ "status": "paused" }))
        .send()
        .await
        .unwrap(),
        200,
    )
    .await;
    for _ in 0..3 {
        contact(&app, &key).await;
    }
    app.drain_jobs().await;

    let stats = get_json(&app, "/v1/webhooks/delivery-stats", &key).await;
    assert_eq!(stats["object"], "delivery_stats");
    assert_eq!(stats["hours"], 24);
    let buckets = stats["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 24);
    let starts: Vec<i64> = buckets
        .iter()
        .map(|b| rampart::clock::parse_rfc3339(b["hour"].as_str().unwrap()).unwrap())
        .collect();
    assert!(
        starts.windows(2).all(|w| w[1] - w[0] == HOUR_MS),
        "hourly, oldest first"
    );
    assert!(
        rampart::clock::now_ms() - starts[23] < HOUR_MS,
        "the last is this hour"
    );
    let (by, sum) = per_hour(&stats);
    assert_eq!(sum, (5, 4), "{stats}");
    // Each attempt in the hour the log has it in.
    let mut want: HashMap<String, (i64, i64)> = HashMap::new();
    for h in attempt_hours(&app, &ok_ep).await {
        want.entry(h).or_default().0 += 1;
    }
    for h in attempt_hours(&app, &bad_ep).await {
        want.entry(h).or_default().1 += 1;
    }
    for (i, h) in attempt_hours(&app, &flaky_ep).await.into_iter().enumerate() {
        // The log doesn't say which attempt failed; an hour boundary between them is rare.
        let c = want.entry(h).or_default();
        if i == 0 { c.1 += 1 } else { c.0 += 1 }
    }
    if want.len() == 1 {
        for (hour, counts) in &want {
            assert_eq!(by.get(hour), Some(counts), "{hour}: {stats}");
        }
    }

    // Success rates per endpoint: the paused one has no attempts and is not listed.
    let rates: HashMap<&str, (i64, i64, f64)> = stats["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["endpoint_id"].as_str().unwrap(),
                (
                    e["succeeded"].as_i64().unwrap(),
                    e["failed"].as_i64().unwrap(),
                    e["success_rate"].as_f64().unwrap(),
                ),
            )
        })
        .collect();
    assert_eq!(rates.len(), 3, "{stats}");
    assert_eq!(rates[ok_ep.as_str()], (3, 0, 1.0));
    assert_eq!(rates[bad_ep.as_str()], (0, 3, 0.0));
    let (f_ok, f_failed, f_rate) = rates[flaky_ep.as_str()];
    assert_eq!((f_ok, f_failed), (2, 1));
    assert!((f_rate - 2.0 / 3.0).abs() < 1e-9, "{f_rate}");

    // The good endpoint's attempts move to five hours ago: still in the day, not in the hour.
    rampart::store::Q::write(
        "UPDATE delivery_hourly SET hour_start = hour_start - $2 WHERE endpoint_id = $1",
    )
    .bind(ok_ep.as_str())
    .bind(5 * HOUR_MS)
    .execute(&mut app.state.db.clone())
    .await
    .unwrap();
    let stats = get_json(&app, "/v1/webhooks/delivery-stats", &key).await;
    assert_eq!(per_hour(&stats).1, (5, 4), "{stats}");

    // Failing: the paused endpoint (no attempt yet) and the one whose latest attempt failed
    // (the flaky one too if its failure was logged last).
    let failing = stats["failing_endpoints"].as_array().unwrap();
    let ids: Vec<&str> = failing
        .iter()
        .map(|f| f["endpoint_id"].as_str().unwrap())
        .filter(|id| *id != flaky_ep.as_str())
        .collect();
    assert_eq!(ids.len(), 2, "{failing:?}");
    assert!(ids.contains(&bad_ep.as_str()) && ids.contains(&paused_ep.as_str()));
    let b = failing
        .iter()
        .find(|f| f["endpoint_id"] == bad_ep.as_str())
        .unwrap();
    assert_eq!(b["last_error_class"], "http_status", "{b}");
    assert!(b["last_attempt_at"].is_string() && b["url"].as_str().unwrap().ends_with("/bad"));
    let p = failing
        .iter()
        .find(|f| f["endpoint_id"] == paused_ep.as_str())
        .unwrap();
    assert_eq!(
        (p["status"].as_str(), p["last_attempt_at"].is_null()),
        (Some("paused"), true)
    );

    // A shorter window leaves the older attempts out.
    let recent = get_json(&app, "/v1/webhooks/delivery-stats?hours=1", &key).await;
    assert_eq!(recent["buckets"].as_array().unwrap().len(), 1);
    let (_, recent_sum) = per_hour(&recent);
    assert!(recent_sum.0 <= 2 && recent_sum.1 <= 4, "{recent}");
    assert!(
        recent["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["endpoint_id"] != ok_ep.as_str()),
        "{recent}"
    );

    // A deleted endpoint has no success rate any more; its attempts stay in the hours.
    let deleted = app
        .req(
            reqwest::Method::DELETE,
            &format!("/v1/webhooks/{flaky_ep}"),
            &key,
        )
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    let after = get_json(&app, "/v1/webhooks/delivery-stats", &key).await;
    assert_eq!(per_hour(&after).1, (5, 4), "{after}");
    let listed: Vec<&str> = after["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["endpoint_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 2, "{after}");
    assert!(!listed.contains(&flaky_ep.as_str()), "{after}");
    app.stop().await;
}

async fn stats_are_per_tenant_and_hours_are_bounded(store: Store) {
    let app = spawn_quiet(store, &[]).await;
    let org = app.org("Mine").await;
    let other = app.org("Theirs").await;
    for o in [&org, &other] {
        app.set_subscription(o, "active", "full").await;
    }
    let rx = Receiver::start().await;
    let key = app.full_key(&org).await;
    let (_, test_key) = app
        .key_with(
            &org,
            &["contacts", "webhooks"],
            &["read", "write"],
            "test",
            None,
            None,
        )
        .await;
    let theirs = app.full_key(&other).await;
    for k in [&key, &test_key, &theirs] {
        endpoint(
            &app,
            k,
            &rx.url("/x"),
            json!({ "events": ["contact.created"] }),
        )
        .await;
    }
    contact(&app, &theirs).await;
    contact(&app, &theirs).await;
    contact(&app, &test_key).await;
    app.drain_jobs().await;
    // Ours is empty; the sandbox's attempt was recorded, not sent: delivered.
    let sum = |v: &Value| per_hour(v).1;
    let rated = |v: &Value| {
        v["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["succeeded"].as_i64().unwrap(),
                    e["failed"].as_i64().unwrap(),
                )
            })
            .collect::<Vec<_>>()
    };
    let ours = get_json(&app, "/v1/webhooks/delivery-stats", &key).await;
    assert_eq!((sum(&ours), rated(&ours)), ((0, 0), vec![]), "{ours}");
    let sandbox = get_json(&app, "/v1/webhooks/delivery-stats", &test_key).await;
    assert_eq!(sum(&sandbox), (1, 0), "{sandbox}");
    assert_eq!(rated(&sandbox), vec![(1, 0)], "{sandbox}");
    assert_eq!(sandbox["endpoints"][0]["success_rate"], 1.0);
    assert!(
        sandbox["failing_endpoints"].as_array().unwrap().is_empty(),
        "{sandbox}"
    );
    let their_stats = get_json(&app, "/v1/webhooks/delivery-stats", &theirs).await;
    assert_eq!(sum(&their_stats), (2, 0));
    assert_eq!(rated(&their_stats), vec![(2, 0)]);
    let week = get_json(&app, "/v1/webhooks/delivery-stats?hours=168", &key).await;
    assert_eq!(week["buckets"].as_array().unwrap().len(), 168);
    for bad in ["0", "169", "-1", "1.5", "day", ""] {
        problem_of(
            app.get_as(&format!("/v1/webhooks/delivery-stats?hours={bad}"), &key)
                .await,
            400,
            "bad_request",
        )
        .await;
    }
    app.stop().await;
}

/// The plan of `sql` as the store explains it, one line per step.
async fn plan(app: &TestApp, store: Store, sql: &'static str, binds: &[&str]) -> String {
    let explain: &'static str = match store {
        Store::Sqlite => format!("EXPLAIN QUERY PLAN {sql}").leak(),
        Store::Postgres => format!("EXPLAIN {sql}").leak(),
    };
    let mut q = rampart::store::Q::read(explain);
    for b in binds {
        q = match b.parse::<i64>() {
            Ok(n) => q.bind(n),
            Err(_) => q.bind(*b),
        };
    }
    let rows = q.fetch_rows(&mut app.state.db.clone()).await.unwrap();
    rows.iter()
        .map(|r| match store {
            Store::Sqlite => r.get::<String>("detail").unwrap(),
            Store::Postgres => r.get::<String>("QUERY PLAN").unwrap(),
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// 100,000 attempts in the last day (one in 17 failed) next to another org's 100,000, and a
/// year of hourly counts for each: the chart and the success rates read the counts through
/// `delivery_hourly_tenant`, the failing endpoints one index seek per endpoint, no table scan.
async fn the_counts_read_indexes_at_100_000_attempts(store: Store) {
    let app = spawn_quiet(store, &[]).await;
    let mut tenants = Vec::new();
    for name in ["Busy", "Neighbour"] {
        let org = app.org(name).await;
        app.set_subscription(&org, "active", "full").await;
        let key = app.full_key(&org).await;
        let (ep, _) = endpoint(&app, &key, "https://example.com/busy", json!({})).await;
        let ping = get_json_post(&app, &format!("/v1/webhooks/{ep}/test"), &key).await;
        tenants.push((
            org,
            key,
            ep,
            ping["delivery_id"].as_str().unwrap().to_owned(),
        ));
    }
    let now = rampart::clock::now_ms();
    let this_hour = now / HOUR_MS * HOUR_MS;
    for (org, _, ep, delivery) in &tenants {
        rampart::store::Q::write(
            "INSERT INTO delivery_attempts (id, delivery_id, org_id, environment, endpoint_id, attempt, status_code, latency_ms, error_class, created_at)
             WITH RECURSIVE n (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999)
             SELECT $1 || CAST(i AS TEXT), $2, $3, 'live', $4, 1,
                    CASE WHEN i % 17 = 0 THEN 500 ELSE 200 END, 10,
                    CASE WHEN i % 17 = 0 THEN 'http_status' END, $5 - i * 800
               FROM n",
        )
        .bind(format!("att_{}_", org.id))
        .bind(delivery.as_str())
        .bind(org.id.as_str())
        .bind(ep.as_str())
        .bind(now)
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
        // A year of hours, 100 attempts each, 3 failed.
        rampart::store::Q::write(
            "INSERT INTO delivery_hourly (endpoint_id, hour_start, org_id, environment, succeeded, failed)
             WITH RECURSIVE n (i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 8759)
             SELECT $1, $2 - CAST(i AS BIGINT) * 3600000, $3, 'live', 97, 3 FROM n",
        )
        .bind(ep.as_str())
        .bind(this_hour)
        .bind(org.id.as_str())
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
    }
    rampart::store::Q::write("ANALYZE")
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
    let (org, key, _, _) = &tenants[0];
    let (first, last) = (
        (this_hour - 23 * HOUR_MS).to_string(),
        this_hour.to_string(),
    );
    let hourly = plan(
        &app,
        store,
        rampart::deliveries::hourly::PER_HOUR,
        &[&org.id, "live", &first, &last],
    )
    .await;
    let rates = plan(
        &app,
        store,
        rampart::deliveries::hourly::PER_ENDPOINT,
        &[&org.id, "live", &first],
    )
    .await;
    let failing = plan(
        &app,
        store,
        rampart::deliveries::store::FAILING_ENDPOINTS,
        &[&org.id, "live", "100"],
    )
    .await;
    eprintln!(
        "{store:?} hourly plan:\n{hourly}\n{store:?} rates plan:\n{rates}\n{store:?} failing plan:\n{failing}"
    );
    match store {
        Store::Sqlite => {
            for p in [&hourly, &rates] {
                assert!(p.contains("INDEX delivery_hourly_tenant"), "{p}");
                assert!(!p.contains("SCAN c"), "{p}");
            }
            assert!(
                failing.contains("INDEX delivery_attempts_endpoint"),
                "{failing}"
            );
        }
        Store::Postgres => {
            for p in [&hourly, &rates] {
                assert!(p.contains("delivery_hourly_tenant"), "{p}");
                assert!(!p.contains("Seq Scan on delivery_hourly"), "{p}");
            }
            assert!(
                !failing.contains("Seq Scan on delivery_attempts"),
                "{failing}"
            );
        }
    }
    let started = std::time::Instant::now();
    let stats = get_json(&app, "/v1/webhooks/delivery-stats", key).await;
    let took = started.elapsed();
    eprintln!("{store:?}: delivery-stats over a year of counts in {took:?}");
    let (_, (ok, failed)) = per_hour(&stats);
    assert_eq!((ok, failed), (24 * 97, 24 * 3), "{stats}");
    assert_eq!(stats["endpoints"].as_array().unwrap().len(), 1, "{stats}");
    assert!(took < std::time::Duration::from_secs(2), "{took:?}");
    app.stop().await;
}

/// Many deliveries at once, to a good endpoint and a failing one (which turns `failed` after a
/// few, its other deliveries dead-lettered without an attempt): each endpoint's counts equal
/// its logged attempts, succeeded and failed.
/// An org with a good endpoint and a failing one (no retries), and `contacts` contacts created
/// at once, their deliveries drained: (key, good endpoint, failing endpoint).
async fn good_and_failing(app: &TestApp, contacts: usize) -> (String, String, String) {
    let org = app.org("Busy").await;
    app.set_subscription(&org, "active", "full").await;
    let key = app.full_key(&org).await;
    let good = Receiver::start().await;
    let bad = Receiver::start().await;
    bad.set_default(Reply::status(503));
    let only = json!({ "events": ["contact.created"], "max_retries": 0 });
    let (good_ep, _) = endpoint(app, &key, &good.url("/good"), only.clone()).await;
    let (bad_ep, _) = endpoint(app, &key, &bad.url("/bad"), only).await;
    let creates = (0..contacts).map(|_| contact(app, &key));
    futures_util::future::join_all(creates).await;
    app.drain_jobs().await;
    good.wait_for(contacts, std::time::Duration::from_secs(30))
        .await;
    (key, good_ep, bad_ep)
}

/// Each endpoint's counts (the success rates of `GET /v1/webhooks/delivery-stats`) equal its
/// logged attempts; returns them as (succeeded, failed) per endpoint.
async fn assert_counts_match_the_log(
    app: &TestApp,
    key: &str,
    endpoints: &[&str],
) -> Vec<(i64, i64)> {
    let stats = get_json(app, "/v1/webhooks/delivery-stats", key).await;
    let mut logs = Vec::new();
    for ep in endpoints {
        let logged: Vec<i64> = rampart::store::Q::read(
            "SELECT CAST(CASE WHEN error_class IS NULL THEN 1 ELSE 0 END AS BIGINT) FROM delivery_attempts WHERE endpoint_id = $1",
        )
        .bind(*ep)
        .fetch_column(&mut app.state.db.clone())
        .await
        .unwrap();
        let log = (
            logged.iter().sum::<i64>(),
            logged.iter().filter(|ok| **ok == 0).count() as i64,
        );
        let counted = stats["endpoints"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["endpoint_id"] == *ep)
            .map(|e| {
                (
                    e["succeeded"].as_i64().unwrap(),
                    e["failed"].as_i64().unwrap(),
                )
            });
        assert_eq!(counted, Some(log), "{ep}: {stats}");
        logs.push(log);
    }
    logs
}

async fn counts_match_the_log_after_concurrent_deliveries(store: Store) {
    let app = spawn_quiet(store, &[]).await;
    let (key, good_ep, bad_ep) = good_and_failing(&app, 60).await;
    let logs = assert_counts_match_the_log(&app, &key, &[&good_ep, &bad_ep]).await;
    assert_eq!(logs[0], (60, 0));
    assert!(logs[1].0 == 0 && logs[1].1 > 0, "{logs:?}");
    app.stop().await;
}

/// Two instances, each with its worker, share one org's deliveries to the same endpoints: their
/// completion batches may add to the same hourly rows at once (on Postgres, row locks taken in
/// key order, so no deadlock), and every attempt is still counted exactly once.
async fn two_workers_count_every_attempt_once(store: Store) {
    let a = spawn_app(store).await;
    let b = spawn_on(a.db.clone(), &[], Default::default()).await;
    let org = a.org("Two").await;
    a.set_subscription(&org, "active", "full").await;
    let key = a.full_key(&org).await;
    let good = [Receiver::start().await, Receiver::start().await];
    let bad = Receiver::start().await;
    bad.set_default(Reply::status(503));
    let only = json!({ "events": ["contact.created"], "max_retries": 0 });
    let mut eps = Vec::new();
    for rx in good.iter().chain([&bad]) {
        eps.push(endpoint(&a, &key, &rx.url("/"), only.clone()).await.0);
    }
    let creates = (0..120).map(|i| contact(if i % 2 == 0 { &a } else { &b }, &key));
    futures_util::future::join_all(creates).await;
    for rx in &good {
        rx.wait_for(120, std::time::Duration::from_secs(30)).await;
    }
    eventually(std::time::Duration::from_secs(30), || async {
        (count(
            &a,
            "SELECT COUNT(*) AS n FROM deliveries WHERE status = 'pending'",
            &[],
        )
        .await
            == 0)
            .then_some(())
    })
    .await
    .expect("every delivery settled");
    let logs = assert_counts_match_the_log(
        &a,
        &key,
        &eps.iter().map(String::as_str).collect::<Vec<_>>(),
    )
    .await;
    assert_eq!(&logs[..2], &[(120, 0), (120, 0)]);
    assert!(logs[2].0 == 0 && logs[2].1 > 0, "{logs:?}");
    b.stop().await;
    a.stop().await;
}

async fn get_json_post(app: &TestApp, path: &str, key: &str) -> Value {
    json_of(app.post_as(path, key, &json!({})).await, 202).await
}

/// Migration 0013 counts the attempts logged before it (an upgrade): its backfill, run again
/// over a log whose counts were dropped, gives back the same counts the worker kept.
async fn the_upgrade_counts_the_attempts_already_logged(store: Store) {
    let app = spawn_quiet(store, &[]).await;
    let (key, _, _) = good_and_failing(&app, 4).await;
    let kept = get_json(&app, "/v1/webhooks/delivery-stats", &key).await;
    assert_eq!(per_hour(&kept).1.0, 4, "{kept}");

    let dialect = match store {
        Store::Sqlite => "sqlite",
        Store::Postgres => "postgres",
    };
    let migration = std::fs::read_to_string(format!(
        "{}/migrations/{dialect}/0013_delivery_hourly.sql",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap();
    let start = migration.find("INSERT INTO delivery_hourly").unwrap();
    let end = start + migration[start..].find(';').unwrap();
    let backfill: &'static str = migration[start..end].to_owned().leak();
    let mut db = app.state.db.clone();
    rampart::store::Q::write("DELETE FROM delivery_hourly")
        .execute(&mut db)
        .await
        .unwrap();
    rampart::store::Q::write(backfill)
        .execute(&mut db)
        .await
        .unwrap();
    let rebuilt = get_json(&app, "/v1/webhooks/delivery-stats", &key).await;
    assert_eq!(rebuilt["buckets"], kept["buckets"]);
    assert_eq!(rebuilt["endpoints"], kept["endpoints"]);
    app.stop().await;
}
