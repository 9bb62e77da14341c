//! Finding 2 and 4 of issue 22: a body declared too large is refused from its header, a
//! stalled upload is the client's 408 (not a server 5xx), and the refusals hyper makes itself
//! carry problem bodies like every other error.

use std::time::Duration;

use crate::helpers::*;
use crate::scenarios;

use super::raw;

scenarios![
    a_body_declared_over_the_limit_is_refused_at_once_on_any_route,
    a_stalled_upload_is_the_clients_408_and_not_a_server_error,
    refusals_made_by_the_http_parser_are_problem_documents,
];

/// A 2 MB `Content-Length` against the 1 MiB limit, and no body: without the header check the
/// server waits for the body until its 30 s request timeout.
async fn a_body_declared_over_the_limit_is_refused_at_once_on_any_route(store: Store) {
    let app = spawn_app(store).await;
    let org = app.org("edges").await;
    let key = app.full_key(&org).await;
    for (path, auth) in [
        ("/v1/auth/login", String::new()),
        ("/v1/contacts", format!("authorization: Bearer {key}\r\n")),
        ("/no/such/route", String::new()),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: 2000000\r\n\r\n"
        );
        let mut s = raw::send(app.addr, head.as_bytes()).await;
        let res = raw::response(&mut s, Duration::from_secs(3)).await;
        let p = res.problem(413, "payload_too_large");
        assert!(p["detail"].as_str().unwrap().contains("1048576"), "{p}");
    }
}

/// The client sends 10 of the 50 bytes it announced, then nothing.
async fn a_stalled_upload_is_the_clients_408_and_not_a_server_error(store: Store) {
    // The body deadline is short here; the request timeout keeps its 30 s default.
    let app = spawn_app_with(store, &[("RAMPART_BODY_TIMEOUT", "300ms")]).await;
    let org = app.org("edges").await;
    let key = app.full_key(&org).await;
    for (path, auth) in [
        ("/v1/auth/login", String::new()),
        ("/v1/contacts", format!("authorization: Bearer {key}\r\n")),
    ] {
        let head = format!(
            "POST {path} HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\ncontent-length: 50\r\n\r\n{{\"email\":"
        );
        let mut s = raw::send(app.addr, head.as_bytes()).await;
        let res = raw::response(&mut s, Duration::from_secs(5)).await;
        res.problem(408, "body_timeout");
        let metrics = app.metrics().await;
        let lines: Vec<&str> = metrics
            .lines()
            .filter(|l| {
                l.starts_with("rampart_http_requests_total")
                    && l.contains(&format!("route=\"{path}\""))
            })
            .collect();
        assert!(
            lines.iter().any(|l| l.contains("status=\"408\"")),
            "{lines:?}"
        );
        assert!(
            !lines.iter().any(|l| l.contains("status=\"5")),
            "a stalled upload is not a server error: {lines:?}"
        );
    }
    // A request whose body arrives is unaffected by the deadline.
    let res = app
        .post_as(
            "/v1/contacts",
            &key,
            &serde_json::json!({ "external_key": "k1" }),
        )
        .await;
    assert_eq!(res.status(), 201);
}

/// Heads hyper cannot or will not parse never reach a handler; their answers are still
/// problem documents, and the server keeps serving.
async fn refusals_made_by_the_http_parser_are_problem_documents(store: Store) {
    let app = spawn_app(store).await;
    let long_target = format!("/v1/contacts?cursor={}", "a".repeat(20_000));
    let huge_header = format!("x-filler: {}\r\n", "b".repeat(40 * 1024));
    let many_headers: String = (0..150).map(|i| format!("x-h{i}: v\r\n")).collect();
    let cases = [
        (
            format!("GET {long_target} HTTP/1.1\r\nhost: x\r\n\r\n"),
            414,
            "uri_too_long",
        ),
        (
            format!("GET /health/live HTTP/1.1\r\nhost: x\r\n{huge_header}\r\n"),
            431,
            "headers_too_large",
        ),
        (
            format!("GET /health/live HTTP/1.1\r\nhost: x\r\n{many_headers}\r\n"),
            431,
            "headers_too_large",
        ),
        (
            "GET /health/live HTTP/1.1\r\nhost: x\r\nthis is not a header\r\n\r\n".to_owned(),
            400,
            "bad_request",
        ),
    ];
    for (request, status, code) in cases {
        let mut s = raw::send(app.addr, request.as_bytes()).await;
        let res = raw::response(&mut s, Duration::from_secs(5)).await;
        res.problem(status, code);
        assert_eq!(res.header("x-content-type-options"), Some("nosniff"));
    }
    assert_eq!(app.get("/health/live").await.status(), 200);
}
