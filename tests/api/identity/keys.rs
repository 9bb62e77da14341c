//! API keys: environments, lifecycle, rotation, revocation across instances, last use.

use std::time::{Duration, Instant};

use serde_json::json;

use super::PW;
use crate::helpers::*;

crate::scenarios![
    test_keys_and_live_keys_never_see_each_others_data,
    key_lifecycle_is_audited_and_least_privilege,
    rotation_grace_period_keeps_the_old_secret_briefly,
    revocation_reaches_another_instance_within_a_second,
    key_last_use_is_recorded_in_batches,
];

async fn test_keys_and_live_keys_never_see_each_others_data(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let (_, live) = app
        .key_with(&org, &["contacts"], &["read", "write"], "live", None, None)
        .await;
    let (_, test) = app
        .key_with(&org, &["contacts"], &["read", "write"], "test", None, None)
        .await;
    let lc = json_of(
        app.post_as("/v1/contacts", &live, &json!({ "external_key": "same" }))
            .await,
        201,
    )
    .await;
    let tc = json_of(
        app.post_as("/v1/contacts", &test, &json!({ "external_key": "same" }))
            .await,
        201,
    )
    .await;
    assert_eq!(lc["livemode"], true);
    assert_eq!(tc["livemode"], false);
    // The same key again in the same environment: 409, and nothing of it stays (the insert
    // is deferred with its event, so both fail together).
    let dup = problem_of(
        app.post_as("/v1/contacts", &live, &json!({ "external_key": "same" }))
            .await,
        409,
        "conflict",
    )
    .await;
    assert!(
        dup["detail"].as_str().unwrap().contains("external_key"),
        "{dup}"
    );
    let db = app.state.db.clone();
    let count = |table: &'static str| {
        let mut db = db.clone();
        async move {
            rampart::store::Q::read(match table {
                "contacts" => "SELECT COUNT(*) AS n FROM contacts",
                _ => "SELECT COUNT(*) AS n FROM events WHERE type = 'contact.created'",
            })
            .fetch_row(&mut db)
            .await
            .unwrap()
            .get::<i64>("n")
            .unwrap()
        }
    };
    assert_eq!(count("contacts").await, 2);
    assert_eq!(count("events").await, 2);
    problem_of(
        app.get_as(
            &format!("/v1/contacts/{}", lc["id"].as_str().unwrap()),
            &test,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    problem_of(
        app.get_as(
            &format!("/v1/contacts/{}", tc["id"].as_str().unwrap()),
            &live,
        )
        .await,
        404,
        "not_found",
    )
    .await;
    let list = json_of(app.get_as("/v1/contacts", &test).await, 200).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(list["data"][0]["id"], tc["id"]);
}

async fn key_lifecycle_is_audited_and_least_privilege(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    app.user(&org, "dev@example.com", "developer", PW).await;
    let dev = app.login("dev@example.com", PW).await["access_token"]
        .as_str()
        .unwrap()
        .to_owned();

    let res = app
        .post_as("/v1/developer/keys", &dev, &json!({ "name": "ci", "scopes": ["contacts"], "permissions": ["read", "write"], "rate_limit": "5/s" }))
        .await;
    let created = json_of(res, 201).await;
    let secret = created["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("rk_live_"));
    assert_eq!(created["prefix"].as_str().unwrap(), &secret[..12]);
    assert_eq!(created["rate_limit"], "5/s");
    let id = created["id"].as_str().unwrap().to_owned();
    let got = json_of(
        app.get_as(&format!("/v1/developer/keys/{id}"), &dev).await,
        200,
    )
    .await;
    assert!(got.get("secret").is_none(), "the secret is shown once");
    let list = json_of(app.get_as("/v1/developer/keys", &dev).await, 200).await;
    assert!(!list.to_string().contains(&secret));
    assert_eq!(app.get_as("/v1/contacts", &secret).await.status(), 200);

    // A key cannot mint keys.
    problem_of(
        app.post_as(
            "/v1/developer/keys",
            &secret,
            &json!({ "name": "x", "scopes": ["contacts"], "permissions": ["read"] }),
        )
        .await,
        403,
        "insufficient_scope",
    )
    .await;
    // A developer cannot grant what developers lack.
    let p = problem_of(
        app.post_as(
            "/v1/developer/keys",
            &dev,
            &json!({ "name": "x", "scopes": ["audit_logs"], "permissions": ["read"] }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert!(p["detail"].as_str().unwrap().contains("audit_logs"), "{p}");
    let p = problem_of(
        app.post_as(
            "/v1/developer/keys",
            &dev,
            &json!({ "name": "x", "scopes": ["api_keys", "nope"], "permissions": ["read"] }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"][0]["field"], "scopes[1]", "{p}");
    let p = problem_of(
        app.post_as(
            "/v1/developer/keys",
            &dev,
            &json!({ "name": "", "scopes": ["api_keys", "gdpr"], "permissions": ["read"] }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
    assert_eq!(p["errors"].as_array().unwrap().len(), 2, "{p}");
    // Viewers cannot manage keys at all.
    let viewer = app.token_for(&org, "viewer");
    problem_of(
        app.get_as("/v1/developer/keys", &viewer).await,
        403,
        "insufficient_scope",
    )
    .await;

    let rotated = json_of(
        app.post_as(&format!("/v1/developer/keys/{id}/rotate"), &dev, &json!({}))
            .await,
        200,
    )
    .await;
    let new_secret = rotated["secret"].as_str().unwrap();
    assert_ne!(new_secret, secret);
    problem_of(
        app.get_as("/v1/contacts", &secret).await,
        401,
        "api_key_revoked",
    )
    .await;
    assert_eq!(app.get_as("/v1/contacts", new_secret).await.status(), 200);
    let revoked = json_of(
        app.delete_as(&format!("/v1/developer/keys/{id}"), &dev)
            .await,
        200,
    )
    .await;
    assert_eq!(revoked["status"], "revoked");
    problem_of(
        app.get_as("/v1/contacts", new_secret).await,
        401,
        "api_key_revoked",
    )
    .await;
    problem_of(
        app.post_as(&format!("/v1/developer/keys/{id}/rotate"), &dev, &json!({}))
            .await,
        409,
        "conflict",
    )
    .await;

    let actions = app.audit_actions(&org).await;
    for a in ["api_key.created", "api_key.rotated", "api_key.revoked"] {
        assert!(
            actions.contains(&(a.into(), "success".into())),
            "{a} missing: {actions:?}"
        );
    }
}

async fn rotation_grace_period_keeps_the_old_secret_briefly(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let admin = app.token_for(&org, "admin");
    let (id, old) = app
        .key_with(&org, &["contacts"], &["read"], "live", None, None)
        .await;
    let res = app
        .post_as(
            &format!("/v1/developer/keys/{id}/rotate"),
            &admin,
            &json!({ "grace_period_seconds": 2 }),
        )
        .await;
    let new = json_of(res, 200).await["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        app.get_as("/v1/contacts", &old).await.status(),
        200,
        "old secret in grace"
    );
    assert_eq!(app.get_as("/v1/contacts", &new).await.status(), 200);
    // The 2 s grace period running out is what is tested: the wait is real time.
    tokio::time::sleep(Duration::from_millis(3100)).await;
    problem_of(
        app.get_as("/v1/contacts", &old).await,
        401,
        "api_key_revoked",
    )
    .await;
    assert_eq!(app.get_as("/v1/contacts", &new).await.status(), 200);
    problem_of(
        app.post_as(
            &format!("/v1/developer/keys/{id}/rotate"),
            &admin,
            &json!({ "grace_period_seconds": 999999999 }),
        )
        .await,
        422,
        "validation_failed",
    )
    .await;
}

async fn revocation_reaches_another_instance_within_a_second(store: Store) {
    let redis = redis_url();
    let extra: Vec<(&str, &str)> = match &redis {
        Some(r) => vec![("RAMPART_REDIS_URL", r.as_str())],
        None => vec![],
    };
    let a = spawn_app_with(store, &extra).await;
    let b = spawn_on(a.db.clone(), &extra, Default::default()).await;
    if redis.is_some() {
        // Wait until B hears announcements, so the test exercises the fan-out.
        eventually(Duration::from_secs(5), || async {
            b.state
                .key_cache
                .fanout_healthy
                .load(std::sync::atomic::Ordering::Acquire)
                .then_some(())
        })
        .await
        .expect("B subscribed to revocations");
    }
    let org = a.org("Acme").await;
    let admin = a.token_for(&org, "admin");
    let (id, key) = a
        .key_with(&org, &["contacts"], &["read"], "live", None, None)
        .await;
    // B resolves and caches the key.
    assert_eq!(b.get_as("/v1/contacts", &key).await.status(), 200);
    assert_eq!(b.get_as("/v1/contacts", &key).await.status(), 200);
    assert_eq!(
        a.delete_as(&format!("/v1/developer/keys/{id}"), &admin)
            .await
            .status(),
        200
    );
    let revoked_at = Instant::now();
    let refused = eventually(Duration::from_secs(3), || async {
        (b.get_as("/v1/contacts", &key).await.status() == 401).then_some(revoked_at.elapsed())
    })
    .await
    .expect("B refuses the revoked key");
    assert!(refused <= Duration::from_secs(1), "took {refused:?}");
}

async fn key_last_use_is_recorded_in_batches(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let (id, key) = app
        .key_with(&org, &["contacts"], &["read"], "live", None, None)
        .await;
    let admin = app.token_for(&org, "admin");
    let before = json_of(
        app.get_as(&format!("/v1/developer/keys/{id}"), &admin)
            .await,
        200,
    )
    .await;
    assert!(before["last_used_at"].is_null());
    for _ in 0..5 {
        assert_eq!(app.get_as("/v1/contacts", &key).await.status(), 200);
    }
    // Not written per request...
    let mid = json_of(
        app.get_as(&format!("/v1/developer/keys/{id}"), &admin)
            .await,
        200,
    )
    .await;
    assert!(mid["last_used_at"].is_null());
    // ...but in one batch.
    assert_eq!(
        app.state
            .key_cache
            .flush_last_used(&app.state.db)
            .await
            .unwrap(),
        1
    );
    let after = json_of(
        app.get_as(&format!("/v1/developer/keys/{id}"), &admin)
            .await,
        200,
    )
    .await;
    assert!(after["last_used_at"].is_string());
    // Nothing new, nothing written; a later use is noted again.
    let flush = || async {
        app.state
            .key_cache
            .flush_last_used(&app.state.db)
            .await
            .unwrap()
    };
    assert_eq!(flush().await, 0);
    assert_eq!(app.get_as("/v1/contacts", &key).await.status(), 200);
    assert_eq!(flush().await, 1);
}
