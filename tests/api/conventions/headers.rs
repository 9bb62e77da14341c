//! What every response carries: the request id, the build id, the security headers; unknown
//! routes and wrong methods are problems too.

use crate::helpers::*;

crate::scenarios![
    request_id_is_echoed_when_sane_and_replaced_when_not,
    build_id_is_on_every_response_and_at_build_id_json,
    security_headers_are_on_json_problem_and_html_responses,
    unknown_routes_and_wrong_methods_are_problems,
];

async fn request_id_is_echoed_when_sane_and_replaced_when_not(store: Store) {
    let app = spawn_app(store).await;
    let res = app
        .client
        .get(app.url("/health/live"))
        .header("x-request-id", "trace-abc.123")
        .send()
        .await
        .unwrap();
    assert_eq!(res.headers()["x-request-id"], "trace-abc.123");

    for insane in ["has space", &"x".repeat(129), "semi;colon"] {
        let res = app
            .client
            .get(app.url("/nope"))
            .header("x-request-id", insane)
            .send()
            .await
            .unwrap();
        let rid = res.headers()["x-request-id"].to_str().unwrap().to_owned();
        assert_ne!(rid, insane);
        assert!(uuid::Uuid::parse_str(&rid).is_ok(), "{rid}");
        let p = problem_of(res, 404, "not_found").await;
        assert_eq!(p["request_id"], rid);
    }
    let a = app.get("/health/live").await.headers()["x-request-id"].clone();
    let b = app.get("/health/live").await.headers()["x-request-id"].clone();
    assert_ne!(a, b);
}

async fn build_id_is_on_every_response_and_at_build_id_json(store: Store) {
    let app = spawn_app_with(store, &[("RAMPART_BUILD_ID", "build-42")]).await;
    let res = app.get("/build-id.json").await;
    assert_eq!(res.headers()["x-build-id"], "build-42");
    let body = json_of(res, 200).await;
    assert_eq!(body["build_id"], "build-42");
    assert_eq!(body["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        app.get("/missing").await.headers()["x-build-id"],
        "build-42"
    );
    let ops = app
        .client
        .get(app.ops_url("/health/deep"))
        .send()
        .await
        .unwrap();
    assert_eq!(ops.headers()["x-build-id"], "build-42");
}

fn assert_security_headers(h: &reqwest::header::HeaderMap) {
    assert_eq!(h["x-content-type-options"], "nosniff");
    assert_eq!(h["referrer-policy"], "no-referrer");
    assert!(h.contains_key("content-security-policy"));
    let csp = h["content-security-policy"].to_str().unwrap();
    assert!(!csp.contains("unsafe-inline"), "{csp}");
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
}

async fn security_headers_are_on_json_problem_and_html_responses(store: Store) {
    let app = spawn_app(store).await;
    let json = app.get("/health/live").await;
    assert_security_headers(json.headers());
    assert_eq!(
        json.headers()["content-security-policy"],
        "default-src 'none'; frame-ancestors 'none'"
    );
    assert!(!json.headers().contains_key("strict-transport-security"));
    assert_security_headers(app.get("/nope").await.headers());
    let html = app.get("/docs").await;
    assert_security_headers(html.headers());
    assert!(
        html.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("'nonce-")
    );

    let tls = spawn_app_with(store, &[("RAMPART_HSTS", "true")]).await;
    let res = tls.get("/health/live").await;
    assert!(
        res.headers()["strict-transport-security"]
            .to_str()
            .unwrap()
            .starts_with("max-age=")
    );
}

async fn unknown_routes_and_wrong_methods_are_problems(store: Store) {
    let app = spawn_app(store).await;
    let p = problem_of(app.get("/v1/nothing-here").await, 404, "not_found").await;
    assert_eq!(p["type"], "https://rampart.dev/problems/not_found");
    assert_eq!(p["title"], "Not Found");
    let res = app
        .client
        .delete(app.url("/health/live"))
        .send()
        .await
        .unwrap();
    let allow = res.headers()["allow"].to_str().unwrap().to_owned();
    assert!(allow.contains("GET"), "{allow}");
    problem_of(res, 405, "method_not_allowed").await;
}
