//! Probes and failures: readiness, the ops listener kept apart, panics and timeouts as generic
//! problems.

use std::time::Duration;

use axum::routing::get;
use rampart::http::middleware::{Conventions, conventions};

use crate::helpers::*;

crate::scenarios![
    readiness_passes_on_a_migrated_database,
    ops_endpoints_are_not_on_the_public_listener,
];

crate::plain_tests![
    panics_and_timeouts_become_generic_problems,
    readiness_fails_while_postgres_is_unreachable,
];

async fn readiness_passes_on_a_migrated_database(store: Store) {
    let app = spawn_app(store).await;
    let body = json_of(app.get("/health/ready").await, 200).await;
    assert_eq!(body["status"], "pass");
    let body = json_of(app.get("/health/live").await, 200).await;
    assert_eq!(body["status"], "pass");
}

async fn ops_endpoints_are_not_on_the_public_listener(store: Store) {
    let app = spawn_app(store).await;
    problem_of(app.get("/metrics").await, 404, "not_found").await;
    problem_of(app.get("/health/deep").await, 404, "not_found").await;
    let res = app
        .client
        .get(app.ops_url("/health/deep"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["content-type"], "application/health+json");
    let body = json_of(res, 200).await;
    assert_eq!(body["status"], "pass");
    let metrics = app
        .client
        .get(app.ops_url("/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    let text = metrics.text().await.unwrap();
    assert!(text.contains("rampart_http_requests_total"), "{text}");

    let guarded = spawn_app_with(store, &[("RAMPART_OPS_TOKEN", "ops-token-0123456789")]).await;
    let res = guarded
        .client
        .get(guarded.ops_url("/metrics"))
        .send()
        .await
        .unwrap();
    problem_of(res, 401, "unauthenticated").await;
    let res = guarded
        .client
        .get(guarded.ops_url("/metrics"))
        .bearer_auth("ops-token-0123456789")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}

/// The conventions middleware turns a panic into a generic 500 and enforces the timeout.
pub async fn panics_and_timeouts_become_generic_problems() {
    let conv = std::sync::Arc::new(Conventions {
        build_id: "b".parse().unwrap(),
        body_limit: 1024,
        body_timeout: Duration::from_millis(100),
        hsts: false,
        timeout: Duration::from_millis(200),
    });
    let router = axum::Router::new()
        .route(
            "/panic",
            get(|| async {
                if true {
                    panic!("secret internal detail /etc/passwd");
                }
                "unreachable"
            }),
        )
        .route(
            "/slow",
            get(|| async {
                // Slower than the request timeout: the timeout is what is tested.
                tokio::time::sleep(Duration::from_secs(5)).await;
                "late"
            }),
        )
        .layer(axum::middleware::from_fn_with_state(conv, conventions));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, router).await });
    let c = client();
    let res = c.get(format!("http://{addr}/panic")).send().await.unwrap();
    let p = problem_of(res, 500, "internal_error").await;
    let text = p.to_string();
    assert!(
        !text.contains("passwd") && !text.contains("secret"),
        "{text}"
    );
    let res = c.get(format!("http://{addr}/slow")).send().await.unwrap();
    assert_eq!(res.headers()["retry-after"], "1");
    problem_of(res, 503, "request_timeout").await;
}

/// Readiness is 503 while the database is down; liveness never looks at it.
pub async fn readiness_fails_while_postgres_is_unreachable() {
    let dir = tempfile::tempdir().unwrap();
    let mut env = std::collections::HashMap::new();
    for (k, v) in [
        (
            "RAMPART_DATABASE_URL",
            "postgres://postgres@127.0.0.1:1/down",
        ),
        ("RAMPART_LISTEN", "127.0.0.1:0"),
        ("RAMPART_OPS_LISTEN", "127.0.0.1:0"),
        ("RAMPART_SECRET_KEY", TEST_SECRET),
        ("RAMPART_DATA_DIR", dir.path().to_str().unwrap()),
    ] {
        env.insert(k.to_owned(), v.to_owned());
    }
    rampart::outbound::install_crypto_provider();
    let config = rampart::config::Config::from_map(env).unwrap();
    let app = rampart::app::App::build(config, Default::default())
        .await
        .unwrap();
    let addr = app.api_addr();
    let token = tokio_util::sync::CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move { app.run(t).await });
    let c = client();
    let res = c
        .get(format!("http://{addr}/health/ready"))
        .send()
        .await
        .unwrap();
    let p = problem_of(res, 503, "service_unavailable").await;
    assert!(
        !p.to_string().contains("127.0.0.1:1"),
        "no internal address leaks: {p}"
    );
    let res = c
        .get(format!("http://{addr}/health/live"))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    token.cancel();
}
