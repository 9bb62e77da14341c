//! Limits shared through Redis by several instances: never over-admitting, failing open fast
//! while Redis is away.

use std::time::{Duration, Instant};

use super::set_override;
use crate::helpers::*;

crate::scenarios![
    instances_sharing_redis_never_over_admit,
    busy_limits_leased_from_redis_never_over_admit,
    a_redis_outage_fails_open_fast_and_recovers,
];

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
    // Deep health finds Redis unreachable before any request needs it (requests may be served
    // from leased units for a while), and says so in its alert as well as in its check.
    assert!(
        alert_names(&app_deep(&app).await).contains(&"quota_store_degraded".to_owned()),
        "alerted at once"
    );
    let mut took = Vec::new();
    for i in 0..20 {
        let t = Instant::now();
        let res = app.get_as("/v1/contacts", &key).await;
        took.push(t.elapsed());
        assert_eq!(res.status(), 200, "request {i} fails open");
    }
    // Fast: no request pays more than a Redis timeout (≈50 ms) over the slowest request before
    // the outage, and the typical one pays none (the breaker skips Redis).
    for (i, t) in took.iter().enumerate() {
        assert!(
            *t <= baseline + Duration::from_millis(100),
            "request {i} took {t:?} (baseline {baseline:?})"
        );
    }
    took.sort();
    assert!(
        took[10] <= baseline + Duration::from_millis(25),
        "median {:?} (baseline {baseline:?}): {took:?}",
        took[10]
    );
    let deep = json_of(
        app.client
            .get(app.ops_url("/health/deep"))
            .send()
            .await
            .unwrap(),
        200,
    )
    .await;
    assert!(
        alert_names(&deep).contains(&"quota_store_degraded".to_owned()),
        "{deep}"
    );
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
            // The quota's window, not only a rate key: a rate key lives a few milliseconds,
            // and a request still holding a leased quota unit writes no quota.
            keys.iter()
                .any(|k| k.starts_with("rampart:q:"))
                .then_some(keys)
        }
    })
    .await;
    let keys = used_again.expect("limits went back to Redis");
    // Every limiter key expires on its own: Redis never fills up with dead windows.
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    for k in keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&k)
            .query_async(&mut c)
            .await
            .unwrap();
        // -2: already expired (a rate key); -1 would be a key that never expires.
        assert!(ttl > 0 || ttl == -2, "{k} has no expiry ({ttl})");
    }
}
