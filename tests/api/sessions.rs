//! Issue 22, finding 6: a retried refresh is not a replay.

use std::time::Duration;

use serde_json::{Value, json};

use crate::helpers::*;

crate::scenarios![
    concurrent_refreshes_of_one_token_all_get_the_same_pair_and_the_family_lives,
    a_spent_refresh_token_presented_after_the_reuse_interval_revokes_the_family,
    a_token_older_than_the_immediately_previous_one_revokes_the_family_at_once,
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
