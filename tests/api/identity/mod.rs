//! SPEC §3: sessions, API keys, guards, tenancy, the audit log.

use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde_json::json;

use crate::helpers::*;

crate::scenarios![
    login_refresh_rotation_and_logout,
    refresh_token_reuse_revokes_the_family,
    unknown_user_and_wrong_password_fail_alike,
    login_is_limited_per_address_and_per_account,
    token_attacks_are_refused,
    key_attacks_are_refused,
    test_keys_and_live_keys_never_see_each_others_data,
    key_lifecycle_is_audited_and_least_privilege,
    rotation_grace_period_keeps_the_old_secret_briefly,
    revocation_reaches_another_instance_within_a_second,
    key_last_use_is_recorded_in_batches,
    single_tenant_mode_refuses_other_orgs,
    every_denial_on_v1_is_audited,
    audit_log_lists_with_filters_for_admins_only,
    audit_chain_detects_edits_deletions_and_reordering,
    contacts_crud_with_unique_external_key,
];

const PW: &str = "correct horse battery staple";

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
    // No reuse interval: the replay below comes at once (tests/api/sessions.rs has the retry).
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

fn b64(s: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s)
}

async fn token_attacks_are_refused(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let good = app.token_for(&org, "admin");
    assert_eq!(app.get_as("/v1/contacts", &good).await.status(), 200);
    let parts: Vec<&str> = good.split('.').collect();
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(parts[1])
            .unwrap(),
    )
    .unwrap();
    let with = |f: &dyn Fn(&mut serde_json::Value)| {
        let mut c = claims.clone();
        f(&mut c);
        c
    };
    let sign_other = |c: &serde_json::Value| {
        let keys =
            rampart::access::secrets::Keys::from_master(b"another-deployment-secret-key-000000");
        rampart::access::tokens::sign(&keys, &serde_json::from_value(c.clone()).unwrap())
    };
    let sign_ours = |c: &serde_json::Value| {
        rampart::access::tokens::sign(&app.state.keys, &serde_json::from_value(c.clone()).unwrap())
    };
    let now = rampart::clock::now_ms() / 1000;
    let attacks = vec![
        (
            "alg none",
            format!("{}.{}.", b64(r#"{"alg":"none","typ":"JWT"}"#), parts[1]),
        ),
        (
            "alg HS512",
            format!(
                "{}.{}.{}",
                b64(r#"{"alg":"HS512","typ":"JWT"}"#),
                parts[1],
                parts[2]
            ),
        ),
        ("wrong key", sign_other(&claims)),
        ("expired", sign_ours(&with(&|c| c["exp"] = json!(now - 1)))),
        (
            "not yet valid",
            sign_ours(&with(&|c| c["nbf"] = json!(now + 3600))),
        ),
        (
            "wrong audience",
            sign_ours(&with(&|c| c["aud"] = json!("another-api"))),
        ),
        (
            "wrong issuer",
            sign_ours(&with(&|c| c["iss"] = json!("evil"))),
        ),
        (
            "tampered role",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&with(&|c| c["role"] = json!("owner")).to_string()),
                parts[2]
            ),
        ),
        (
            "tampered org",
            format!(
                "{}.{}.{}",
                parts[0],
                b64(&with(&|c| c["org"] = json!("org_00000000000000000000000000")).to_string()),
                parts[2]
            ),
        ),
        ("garbage", "not.a.token".into()),
        ("two parts", format!("{}.{}", parts[0], parts[1])),
    ];
    for (name, token) in attacks {
        let res = app.get_as("/v1/contacts", &token).await;
        assert_eq!(res.status(), 401, "{name}");
        assert!(res.headers().contains_key("www-authenticate"), "{name}");
        problem_of(res, 401, "unauthenticated").await;
    }
    let res = app
        .client
        .get(app.url("/v1/contacts"))
        .header("authorization", "Basic YTpi")
        .send()
        .await
        .unwrap();
    problem_of(res, 401, "unauthenticated").await;
}

async fn key_attacks_are_refused(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.key(&org, &["contacts"], &["read"]).await;
    assert_eq!(app.get_as("/v1/contacts", &key).await.status(), 200);
    let unknown = format!("rk_live_{}", "A".repeat(32));
    let p = problem_of(
        app.get_as("/v1/contacts", &unknown).await,
        401,
        "invalid_api_key",
    )
    .await;
    // The detail is the message, not the code repeated.
    assert_eq!(p["detail"], "the API key is not valid", "{p}");
    problem_of(
        app.get_as("/v1/contacts", &key[..key.len() - 1]).await,
        401,
        "invalid_api_key",
    )
    .await;
    problem_of(
        app.get_as("/v1/contacts", &format!("{key}x")).await,
        401,
        "invalid_api_key",
    )
    .await;
    // Flipping the environment prefix does not make a live key a test key (or vice versa).
    let flipped = key.replacen("rk_live_", "rk_test_", 1);
    problem_of(
        app.get_as("/v1/contacts", &flipped).await,
        401,
        "invalid_api_key",
    )
    .await;

    let (id, expiring) = app
        .key_with(&org, &["contacts"], &["read"], "live", None, None)
        .await;
    rampart::store::Q::write("UPDATE api_keys SET expires_at = $2 WHERE id = $1")
        .bind(id.as_str())
        .bind(rampart::clock::now_ms() - 1000)
        .execute(&mut app.state.db.clone())
        .await
        .unwrap();
    app.state.key_cache.evict(&id);
    problem_of(
        app.get_as("/v1/contacts", &expiring).await,
        401,
        "api_key_expired",
    )
    .await;

    let admin = app.token_for(&org, "admin");
    let (id, revoked) = app
        .key_with(&org, &["contacts"], &["read"], "live", None, None)
        .await;
    assert_eq!(app.get_as("/v1/contacts", &revoked).await.status(), 200);
    assert_eq!(
        app.delete_as(&format!("/v1/developer/keys/{id}"), &admin)
            .await
            .status(),
        200
    );
    problem_of(
        app.get_as("/v1/contacts", &revoked).await,
        401,
        "api_key_revoked",
    )
    .await;
}

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

async fn single_tenant_mode_refuses_other_orgs(store: Store) {
    let probe = spawn_app(store).await;
    let mine = probe.org("Mine").await;
    let theirs = probe.org("Theirs").await;
    let app = spawn_on(
        probe.db.clone(),
        &[("RAMPART_TENANT_ID", mine.id.as_str())],
        Default::default(),
    )
    .await;
    let my_key = app.key(&mine, &["contacts"], &["read"]).await;
    let their_key = app.key(&theirs, &["contacts"], &["read"]).await;
    assert_eq!(app.get_as("/v1/contacts", &my_key).await.status(), 200);
    problem_of(
        app.get_as("/v1/contacts", &their_key).await,
        403,
        "tenant_mismatch",
    )
    .await;
    problem_of(
        app.get_as("/v1/contacts", &app.token_for(&theirs, "owner"))
            .await,
        403,
        "tenant_mismatch",
    )
    .await;
    // The guard order: authentication before tenancy.
    problem_of(
        app.get_as("/v1/contacts", &format!("rk_live_{}", "B".repeat(32)))
            .await,
        401,
        "invalid_api_key",
    )
    .await;
    // Disabled explicitly, other orgs pass.
    let open = spawn_on(
        probe.db.clone(),
        &[
            ("RAMPART_TENANT_ID", mine.id.as_str()),
            ("RAMPART_SINGLE_TENANT_ENFORCE", "false"),
        ],
        Default::default(),
    )
    .await;
    assert_eq!(open.get_as("/v1/contacts", &their_key).await.status(), 200);
}

async fn every_denial_on_v1_is_audited(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.key(&org, &["messages"], &["read"]).await;
    problem_of(
        app.get_as("/v1/contacts", &key).await,
        403,
        "insufficient_scope",
    )
    .await;
    let wrong_perm = app.key(&org, &["contacts"], &["read"]).await;
    problem_of(
        app.post_as("/v1/contacts", &wrong_perm, &json!({ "external_key": "x" }))
            .await,
        403,
        "insufficient_permission",
    )
    .await;
    let actions = app.audit_actions(&org).await;
    assert_eq!(
        actions
            .iter()
            .filter(|a| a.0 == "auth.forbidden" && a.1 == "denied")
            .count(),
        2,
        "{actions:?}"
    );
    let res = app
        .client
        .get(app.url("/v1/contacts"))
        .header("x-request-id", "probe-401")
        .send()
        .await
        .unwrap();
    problem_of(res, 401, "unauthenticated").await;
    let row = rampart::store::Q::read(
        "SELECT chain, action, outcome, ip FROM audit_logs WHERE request_id = 'probe-401'",
    )
    .fetch_row(&mut app.state.db.clone())
    .await
    .unwrap();
    assert_eq!(row.get::<String>("chain").unwrap(), "_system");
    assert_eq!(row.get::<String>("action").unwrap(), "auth.unauthenticated");
    assert_eq!(
        row.get::<Option<String>>("ip").unwrap().as_deref(),
        Some("127.0.0.1")
    );
}

async fn audit_log_lists_with_filters_for_admins_only(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let other = app.org("Other").await;
    let admin = app.token_for(&org, "admin");
    for i in 0..3 {
        let res = app
            .post_as("/v1/developer/keys", &admin, &json!({ "name": format!("k{i}"), "scopes": ["contacts"], "permissions": ["read"] }))
            .await;
        assert_eq!(res.status(), 201);
    }
    app.post_as(
        "/v1/developer/keys",
        &app.token_for(&other, "admin"),
        &json!({ "name": "theirs", "scopes": ["contacts"], "permissions": ["read"] }),
    )
    .await;
    let page = json_of(
        app.get_as("/v1/audit-logs?limit=2&action=api_key.created", &admin)
            .await,
        200,
    )
    .await;
    assert_eq!(page["data"].as_array().unwrap().len(), 2);
    let entry = &page["data"][0];
    assert_eq!(entry["action"], "api_key.created");
    assert_eq!(entry["actor"]["type"], "user");
    assert_eq!(entry["target"]["type"], "api_key");
    assert!(entry["request_id"].is_string() && entry["ip"].is_string());
    let cursor = page["next_cursor"].as_str().unwrap();
    let page2 = json_of(
        app.get_as(
            &format!("/v1/audit-logs?limit=2&action=api_key.created&cursor={cursor}"),
            &admin,
        )
        .await,
        200,
    )
    .await;
    assert_eq!(page2["data"].as_array().unwrap().len(), 1);
    assert!(page2["next_cursor"].is_null());
    let future = json_of(
        app.get_as("/v1/audit-logs?since=2999-01-01T00:00:00Z", &admin)
            .await,
        200,
    )
    .await;
    assert!(future["data"].as_array().unwrap().is_empty());
    problem_of(
        app.get_as("/v1/audit-logs?since=yesterday", &admin).await,
        400,
        "bad_request",
    )
    .await;
    problem_of(
        app.get_as("/v1/audit-logs?limit=101", &admin).await,
        400,
        "bad_request",
    )
    .await;
    problem_of(
        app.get_as("/v1/audit-logs", &app.token_for(&org, "developer"))
            .await,
        403,
        "insufficient_scope",
    )
    .await;
    let auditor = app.key(&org, &["audit_logs"], &["read"]).await;
    let all = json_of(app.get_as("/v1/audit-logs?limit=100", &auditor).await, 200).await;
    assert!(
        !all.to_string().contains("theirs"),
        "no other org's entries"
    );
}

async fn audit_chain_detects_edits_deletions_and_reordering(store: Store) {
    use rampart::audit;
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let admin = app.token_for(&org, "admin");
    for i in 0..5 {
        app.post_as(
            "/v1/developer/keys",
            &admin,
            &json!({ "name": format!("k{i}"), "scopes": ["contacts"], "permissions": ["read"] }),
        )
        .await;
    }
    let db = app.state.db.clone();
    let (n, brk) = audit::verify(&mut db.clone(), Some(&org.id)).await.unwrap();
    assert_eq!(n, 5);
    assert!(brk.is_none());
    let exec = |q: &'static str| {
        let db = db.clone();
        let org = org.id.clone();
        async move {
            rampart::store::Q::write(q)
                .bind(org)
                .execute(&mut db.clone())
                .await
                .unwrap();
        }
    };
    // Edited.
    exec("UPDATE audit_logs SET action = 'api_key.nothing' WHERE chain = $1 AND seq = 2").await;
    let (_, brk) = audit::verify(&mut db.clone(), Some(&org.id)).await.unwrap();
    let brk = brk.expect("edit detected");
    assert_eq!(brk.seq, 2);
    assert!(brk.problem.contains("edited"), "{brk:?}");
    exec("UPDATE audit_logs SET action = 'api_key.created' WHERE chain = $1 AND seq = 2").await;
    assert!(
        audit::verify(&mut db.clone(), Some(&org.id))
            .await
            .unwrap()
            .1
            .is_none()
    );
    // Reordered: entries 3 and 4 swap places.
    exec("UPDATE audit_logs SET seq = -3 WHERE chain = $1 AND seq = 3").await;
    exec("UPDATE audit_logs SET seq = 3 WHERE chain = $1 AND seq = 4").await;
    exec("UPDATE audit_logs SET seq = 4 WHERE chain = $1 AND seq = -3").await;
    let brk = audit::verify(&mut db.clone(), Some(&org.id))
        .await
        .unwrap()
        .1
        .expect("reorder detected");
    assert_eq!(brk.seq, 3, "{brk:?}");
    // Deleted (from the middle).
    exec("DELETE FROM audit_logs WHERE chain = $1 AND seq = 3").await;
    let brk = audit::verify(&mut db.clone(), Some(&org.id))
        .await
        .unwrap()
        .1
        .expect("deletion detected");
    assert_eq!(brk.seq, 3, "{brk:?}");
    assert!(brk.problem.contains("missing"), "{brk:?}");
}

async fn contacts_crud_with_unique_external_key(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("Acme").await;
    let key = app.full_key(&org).await;
    let c = json_of(
        app.post_as("/v1/contacts", &key, &json!({ "external_key": "cust-1", "name": "Ada", "email": "ada@example.com", "phone": "+14155550123", "attributes": { "plan": "pro" } })).await,
        201,
    )
    .await;
    let id = c["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("con_"));
    assert_eq!(c["object"], "contact");
    assert_eq!(c["attributes"]["plan"], "pro");
    problem_of(
        app.post_as("/v1/contacts", &key, &json!({ "external_key": "cust-1" }))
            .await,
        409,
        "conflict",
    )
    .await;
    let p = problem_of(
        app.post_as(
            "/v1/contacts",
            &key,
            &json!({ "external_key": "", "email": "not-an-email", "phone": "call me" }),
        )
        .await,
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
    assert_eq!(fields, ["external_key", "email", "phone"]);
    let res = app
        .req(Method::PATCH, &format!("/v1/contacts/{id}"), &key)
        .json(&json!({ "name": null, "email": "new@example.com" }))
        .send()
        .await
        .unwrap();
    let patched = json_of(res, 200).await;
    assert!(patched["name"].is_null());
    assert_eq!(patched["email"], "new@example.com");
    assert_eq!(patched["phone"], "+14155550123");
    let found = json_of(
        app.get_as("/v1/contacts?external_key=cust-1", &key).await,
        200,
    )
    .await;
    assert_eq!(found["data"][0]["id"], id.as_str());
    assert_eq!(
        app.delete_as(&format!("/v1/contacts/{id}"), &key)
            .await
            .status(),
        204
    );
    problem_of(
        app.get_as(&format!("/v1/contacts/{id}"), &key).await,
        404,
        "not_found",
    )
    .await;
    problem_of(
        app.delete_as(&format!("/v1/contacts/{id}"), &key).await,
        404,
        "not_found",
    )
    .await;
    // The external key is free again after deletion.
    assert_eq!(
        app.post_as("/v1/contacts", &key, &json!({ "external_key": "cust-1" }))
            .await
            .status(),
        201
    );
}
