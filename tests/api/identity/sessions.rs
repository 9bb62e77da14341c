//! Issue 22, findings 6 and 7: a retried refresh is not a replay, and an account under a
//! distributed guessing attack still lets in the clients that signed in before.

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

crate::scenarios![
    concurrent_refreshes_of_one_token_all_get_the_same_pair_and_the_family_lives,
    a_spent_refresh_token_presented_after_the_reuse_interval_revokes_the_family,
    a_token_older_than_the_immediately_previous_one_revokes_the_family_at_once,
    a_device_token_lets_its_client_in_while_distributed_guessing_locks_the_account,
    a_device_token_that_fails_too_often_is_locked,
    an_expired_device_token_does_not_lift_the_account_limit,
];

const PW: &str = "correct horse battery staple";

async fn refresh(app: &TestApp, token: &Value) -> reqwest::Response {
    app.post_json("/v1/auth/refresh", &json!({ "refresh_token": token }))
        .await
}

async fn concurrent_refreshes_of_one_token_all_get_the_same_pair_and_the_family_lives(
    store: Store,
) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    app.user(&org, "ada@example.com", "developer", PW).await;
    // Several rounds, three at once each: every interleaving of the spend has a chance.
    for _ in 0..4 {
        let t = app.login("ada@example.com", PW).await;
        let (a, b, c) = tokio::join!(
            refresh(&app, &t["refresh_token"]),
            refresh(&app, &t["refresh_token"]),
            refresh(&app, &t["refresh_token"]),
        );
        let (a, b, c) = (
            json_of(a, 200).await,
            json_of(b, 200).await,
            json_of(c, 200).await,
        );
        assert_eq!(a, b, "the same pair, byte for byte");
        assert_eq!(a, c);
        assert_ne!(a["refresh_token"], t["refresh_token"]);
        let access = a["access_token"].as_str().unwrap();
        assert_eq!(app.get_as("/v1/contacts", access).await.status(), 200);
        // The family is alive: the new token refreshes, and the next pair works.
        let next = json_of(refresh(&app, &a["refresh_token"]).await, 200).await;
        let access = next["access_token"].as_str().unwrap();
        assert_eq!(app.get_as("/v1/contacts", access).await.status(), 200);
    }
    let actions = app.audit_actions(&org).await;
    assert!(actions.contains(&("auth.refresh_retry".into(), "success".into())));
    assert!(!actions.iter().any(|(a, _)| a == "auth.refresh_reuse"));
}

async fn a_spent_refresh_token_presented_after_the_reuse_interval_revokes_the_family(store: Store) {
    let app = spawn_app_with(store, &[("RAMPART_REFRESH_REUSE_INTERVAL", "1s")]).await;
    let org = app.org("Acme").await;
    app.user(&org, "ada@example.com", "developer", PW).await;
    let t0 = app.login("ada@example.com", PW).await;
    let t1 = json_of(refresh(&app, &t0["refresh_token"]).await, 200).await;
    // A retry within the interval: the same pair.
    assert_eq!(
        json_of(refresh(&app, &t0["refresh_token"]).await, 200).await,
        t1
    );
    // Time is the feature: the interval has to pass.
    tokio::time::sleep(Duration::from_millis(1300)).await;
    problem_of(
        refresh(&app, &t0["refresh_token"]).await,
        401,
        "unauthenticated",
    )
    .await;
    // The whole family is revoked, the legitimate successor included.
    problem_of(
        refresh(&app, &t1["refresh_token"]).await,
        401,
        "unauthenticated",
    )
    .await;
    assert!(
        app.audit_actions(&org)
            .await
            .contains(&("auth.refresh_reuse".into(), "denied".into()))
    );
}

async fn a_token_older_than_the_immediately_previous_one_revokes_the_family_at_once(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    app.user(&org, "ada@example.com", "developer", PW).await;
    let t0 = app.login("ada@example.com", PW).await;
    let t1 = json_of(refresh(&app, &t0["refresh_token"]).await, 200).await;
    let t2 = json_of(refresh(&app, &t1["refresh_token"]).await, 200).await;
    // t1 is the immediately previous token (t2 is unspent): a retry.
    assert_eq!(
        json_of(refresh(&app, &t1["refresh_token"]).await, 200).await,
        t2
    );
    // t0's successor is spent: a replay, well within the interval.
    problem_of(
        refresh(&app, &t0["refresh_token"]).await,
        401,
        "unauthenticated",
    )
    .await;
    for t in [&t1, &t2] {
        problem_of(
            refresh(&app, &t["refresh_token"]).await,
            401,
            "unauthenticated",
        )
        .await;
    }
    assert!(
        app.audit_actions(&org)
            .await
            .contains(&("auth.refresh_reuse".into(), "denied".into()))
    );
}

/// An app whose login limit is 3/min, behind a trusted proxy so each attempt can come from
/// an address of its own (`X-Forwarded-For`).
async fn limited_app(store: Store, extra: &[(&str, &str)]) -> TestApp {
    let mut env = vec![
        ("RAMPART_LOGIN_RATE_LIMIT", "3/min"),
        ("RAMPART_TRUSTED_PROXIES", "127.0.0.1/32"),
    ];
    env.extend_from_slice(extra);
    spawn_app_with(store, &env).await
}

/// A fresh client address per attempt, so that only the per-account limit is in play.
fn next_ip() -> String {
    static N: AtomicU32 = AtomicU32::new(1);
    let n = N.fetch_add(1, Ordering::Relaxed);
    format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255)
}

async fn attempt(
    app: &TestApp,
    email: &str,
    pw: &str,
    device: Option<&Value>,
) -> reqwest::Response {
    let mut body = json!({ "email": email, "password": pw });
    if let Some(d) = device {
        body["device_token"] = d.clone();
    }
    app.client
        .post(app.url("/v1/auth/login"))
        .header("x-forwarded-for", next_ip())
        .json(&body)
        .send()
        .await
        .unwrap()
}

/// Guesses from new addresses until the account's limit refuses.
async fn exhaust_account(app: &TestApp, email: &str) {
    for _ in 0..10 {
        let res = attempt(app, email, "wrong password!!", None).await;
        match res.status().as_u16() {
            401 => continue,
            429 => return,
            s => panic!("unexpected {s}"),
        }
    }
    panic!("the per-account limit never refused");
}

async fn a_device_token_lets_its_client_in_while_distributed_guessing_locks_the_account(
    store: Store,
) {
    let app = limited_app(store, &[]).await;
    let org = app.org("Acme").await;
    app.user(&org, "ada@example.com", "admin", PW).await;
    app.user(&org, "bob@example.com", "admin", PW).await;
    let ada = json_of(attempt(&app, "ada@example.com", PW, None).await, 200).await;
    let bob = json_of(attempt(&app, "bob@example.com", PW, None).await, 200).await;
    let device = &ada["device_token"];
    assert!(device.as_str().unwrap().starts_with("dt_"), "{ada}");
    assert_ne!(ada["device_token"], bob["device_token"]);

    // Distributed guessing: every attempt from a new address, until the account is locked.
    exhaust_account(&app, "ada@example.com").await;
    // Without a valid device token of this account, even the right password is refused.
    let forged = json!(format!("dt_{}", "A".repeat(43)));
    for d in [None, Some(&forged), Some(&bob["device_token"])] {
        problem_of(
            attempt(&app, "ada@example.com", PW, d).await,
            429,
            "rate_limited",
        )
        .await;
    }
    // With hers, a wrong password is still wrong...
    problem_of(
        attempt(&app, "ada@example.com", "wrong password!!", Some(device)).await,
        401,
        "unauthenticated",
    )
    .await;
    // ...and the right one signs her in, with a new device token that replaces the old one.
    let again = json_of(
        attempt(&app, "ada@example.com", PW, Some(device)).await,
        200,
    )
    .await;
    assert_eq!(
        app.get_as("/v1/contacts", again["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );
    assert_ne!(again["device_token"], *device);
    problem_of(
        attempt(&app, "ada@example.com", PW, Some(device)).await,
        429,
        "rate_limited",
    )
    .await;
    json_of(
        attempt(&app, "ada@example.com", PW, Some(&again["device_token"])).await,
        200,
    )
    .await;
    let actions = app.audit_actions(&org).await;
    assert!(actions.contains(&("auth.login".into(), "failure".into())));
}

async fn a_device_token_that_fails_too_often_is_locked(store: Store) {
    let app = limited_app(store, &[]).await;
    let org = app.org("Acme").await;
    app.user(&org, "ada@example.com", "admin", PW).await;
    let ada = json_of(attempt(&app, "ada@example.com", PW, None).await, 200).await;
    let device = &ada["device_token"];
    exhaust_account(&app, "ada@example.com").await;
    // Its own budget: five wrong passwords (more than the account's three a minute)...
    for _ in 0..5 {
        problem_of(
            attempt(&app, "ada@example.com", "wrong password!!", Some(device)).await,
            401,
            "unauthenticated",
        )
        .await;
    }
    // ...and then it lifts nothing, not even with the right password.
    problem_of(
        attempt(&app, "ada@example.com", PW, Some(device)).await,
        429,
        "rate_limited",
    )
    .await;
}

async fn an_expired_device_token_does_not_lift_the_account_limit(store: Store) {
    let app = limited_app(store, &[("RAMPART_DEVICE_TOKEN_TTL", "1s")]).await;
    let org = app.org("Acme").await;
    app.user(&org, "ada@example.com", "admin", PW).await;
    let ada = json_of(attempt(&app, "ada@example.com", PW, None).await, 200).await;
    exhaust_account(&app, "ada@example.com").await;
    // Time is the feature: the device token has to expire.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    problem_of(
        attempt(&app, "ada@example.com", PW, Some(&ada["device_token"])).await,
        429,
        "rate_limited",
    )
    .await;
}
