//! Forged, tampered and misused credentials are refused; single-tenant mode admits one org.

use base64::Engine as _;
use serde_json::json;

use crate::helpers::*;

crate::scenarios![
    token_attacks_are_refused,
    key_attacks_are_refused,
    single_tenant_mode_refuses_other_orgs,
];

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
