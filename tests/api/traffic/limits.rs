//! Rate limits and quotas: per key, per org plan, per address on public routes.

use super::set_override;
use crate::helpers::*;

crate::scenarios![
    a_keys_rate_limit_refuses_with_ratelimit_fields,
    the_org_plan_limits_all_its_keys_together,
    quotas_per_key_and_per_org,
    public_routes_are_limited_per_address_and_route,
    ratelimit_lists_every_policy_closest_first,
];

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

/// `RateLimit` gives every policy's remaining units (the closest to refusing first), so that a
/// client (the console's usage meters) sees its quota as well as its rate.
async fn ratelimit_lists_every_policy_closest_first(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let (_, key) = app
        .key_with(
            &org,
            &["contacts"],
            &["read"],
            "live",
            Some("100/min"),
            Some("5/day"),
        )
        .await;
    let mut last = String::new();
    for i in 1..=3u64 {
        let res = app.get_as("/v1/contacts", &key).await;
        assert_eq!(res.status(), 200);
        let policy = res.headers()["ratelimit-policy"]
            .to_str()
            .unwrap()
            .to_owned();
        last = res.headers()["ratelimit"].to_str().unwrap().to_owned();
        let names = |field: &str| -> Vec<String> {
            let mut n: Vec<String> = field
                .split(", ")
                .map(|i| i.split(';').next().unwrap().to_owned())
                .collect();
            n.sort();
            n
        };
        assert_eq!(names(&policy), names(&last), "{policy} / {last}");
        assert_eq!(names(&last).len(), 4, "{last}");
        // The key's quota (5 a day) is the closest: first, with what is left of it.
        assert!(
            last.starts_with(&format!("\"key_quota\";r={};t=", 5 - i)),
            "{last}"
        );
    }
    assert!(last.contains("\"key\";r=97;"), "{last}");
}
