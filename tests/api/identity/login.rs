//! Signing in: login, refresh rotation, logout, and the limits on guessing.

use std::time::{Duration, Instant};

use serde_json::json;

use super::PW;
use crate::helpers::*;

crate::scenarios![
    login_refresh_rotation_and_logout,
    refresh_token_reuse_revokes_the_family,
    unknown_user_and_wrong_password_fail_alike,
    login_is_limited_per_address_and_per_account,
];

async fn login_refresh_rotation_and_logout(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    app.user(&org, "ada@example.com", "admin", PW).await;
    let t = app.login("ADA@example.com ", PW).await;
    assert_eq!(t["token_type"], "Bearer");
    assert_eq!(t["org_id"], org.id.as_str());
    assert_eq!(t["expires_in"], 900);
    let access = t["access_token"].as_str().unwrap();
    assert_eq!(app.get_as("/v1/contacts", access).await.status(), 200);

    let res = app
        .post_json(
            "/v1/auth/refresh",
            &json!({ "refresh_token": t["refresh_token"] }),
        )
        .await;
    let t2 = json_of(res, 200).await;
    assert_ne!(t2["refresh_token"], t["refresh_token"]);
    assert_eq!(
        app.get_as("/v1/contacts", t2["access_token"].as_str().unwrap())
            .await
            .status(),
        200
    );

    let res = app
        .post_json(
            "/v1/auth/logout",
            &json!({ "refresh_token": t2["refresh_token"] }),
        )
        .await;
    assert_eq!(res.status(), 204);
    let res = app
        .post_json(
            "/v1/auth/refresh",
            &json!({ "refresh_token": t2["refresh_token"] }),
        )
        .await;
    problem_of(res, 401, "unauthenticated").await;
    // Logout of an unknown token says the same.
    let res = app
        .post_json("/v1/auth/logout", &json!({ "refresh_token": "rt_nope" }))
        .await;
    assert_eq!(res.status(), 204);
    let actions = app.audit_actions(&org).await;
    assert!(actions.contains(&("auth.login".into(), "success".into())));
    assert!(actions.contains(&("auth.logout".into(), "success".into())));
}

async fn refresh_token_reuse_revokes_the_family(store: Store) {
    // No reuse interval: the replay below comes at once (identity/sessions.rs has the retry).
    let app = spawn_app_with(store, &[("RAMPART_REFRESH_REUSE_INTERVAL", "0s")]).await;
    let org = app.org("Acme").await;
    app.user(&org, "ada@example.com", "developer", PW).await;
    let t = app.login("ada@example.com", PW).await;
    let first = t["refresh_token"].clone();
    let t2 = json_of(
        app.post_json("/v1/auth/refresh", &json!({ "refresh_token": first }))
            .await,
        200,
    )
    .await;
    // An attacker replays the spent token: refused, and the legitimate successor dies too.
    problem_of(
        app.post_json("/v1/auth/refresh", &json!({ "refresh_token": first }))
            .await,
        401,
        "unauthenticated",
    )
    .await;
    problem_of(
        app.post_json(
            "/v1/auth/refresh",
            &json!({ "refresh_token": t2["refresh_token"] }),
        )
        .await,
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

async fn unknown_user_and_wrong_password_fail_alike(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    app.user(&org, "ada@example.com", "admin", PW).await;
    let mut bodies = Vec::new();
    // The fastest of three tries of each, interleaved: one try can land on a stall of the
    // machine (tests run in parallel), and the login limit (10/min) allows six.
    let mut times = [Duration::MAX; 2];
    for _ in 0..3 {
        for (i, (email, pw)) in [
            ("ada@example.com", "wrong password!!"),
            ("nobody@example.com", PW),
        ]
        .into_iter()
        .enumerate()
        {
            let started = Instant::now();
            let res = app
                .post_json("/v1/auth/login", &json!({ "email": email, "password": pw }))
                .await;
            times[i] = times[i].min(started.elapsed());
            let mut p = problem_of(res, 401, "unauthenticated").await;
            p.as_object_mut().unwrap().remove("request_id");
            bodies.push(p);
        }
    }
    assert!(
        bodies.iter().all(|b| *b == bodies[0]),
        "identical answers: {bodies:?}"
    );
    // Both verify an argon2 hash: neither is an order of magnitude faster.
    let (a, b) = (times[0].as_secs_f64(), times[1].as_secs_f64());
    assert!(a / b < 10.0 && b / a < 10.0, "{times:?}");
    assert!(
        app.audit_actions(&org)
            .await
            .contains(&("auth.login".into(), "failure".into()))
    );
    // A malformed body is a validation error, not a login attempt.
    let res = app
        .post_json("/v1/auth/login", &json!({ "email": "", "password": "x" }))
        .await;
    let p = problem_of(res, 422, "validation_failed").await;
    assert_eq!(p["errors"][0]["field"], "email");
}

async fn login_is_limited_per_address_and_per_account(store: Store) {
    let app = spawn_app_with(
        store,
        &[
            ("RAMPART_LOGIN_RATE_LIMIT", "3/min"),
            ("RAMPART_TRUSTED_PROXIES", "127.0.0.1/32"),
        ],
    )
    .await;
    let org = app.org("Acme").await;
    app.user(&org, "ada@example.com", "admin", PW).await;
    let attempt = |ip: &'static str, email: &'static str| {
        app.client
            .post(app.url("/v1/auth/login"))
            .header("x-forwarded-for", ip)
            .json(&json!({ "email": email, "password": "wrong password!!" }))
            .send()
    };
    // Per account: three addresses, one account.
    for ip in ["198.51.100.1", "198.51.100.2", "198.51.100.3"] {
        assert_eq!(attempt(ip, "ada@example.com").await.unwrap().status(), 401);
    }
    let res = attempt("198.51.100.4", "ada@example.com").await.unwrap();
    assert!(
        res.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse::<u64>()
            .unwrap()
            >= 1
    );
    problem_of(res, 429, "rate_limited").await;
    // Per address: one address, several accounts.
    for email in ["a@example.com", "b@example.com", "c@example.com"] {
        assert_eq!(attempt("203.0.113.7", email).await.unwrap().status(), 401);
    }
    problem_of(
        attempt("203.0.113.7", "d@example.com").await.unwrap(),
        429,
        "rate_limited",
    )
    .await;
    // Someone else, elsewhere, is not affected.
    assert_eq!(
        attempt("203.0.113.8", "e@example.com")
            .await
            .unwrap()
            .status(),
        401
    );
}
