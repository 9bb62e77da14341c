//! The conventions every response follows, as one outermost middleware: request id and its
//! span, panic → generic 500, request timeout, bare framework errors → problems, build id and
//! security headers, access log and request metrics.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderName, HeaderValue, Response, StatusCode, header};
use axum::middleware::Next;
use futures_util::FutureExt;
use tracing::Instrument;

use super::body::{self, BodyLimits};
use super::edge;
use super::error::{
    ApiError, ErrorCode, HtmlErrorPage, IsProblem, ResponseCode, problem, problem_response,
};
use super::request_id::{self, RequestId};

/// How many headers the conventions middleware adds to every response (at most): whoever
/// builds a response map first reserves room for them too.
pub const HEADERS_ADDED: usize = 8;

/// What the conventions middleware needs to know.
#[derive(Clone)]
pub struct Conventions {
    pub build_id: HeaderValue,
    pub body_limit: usize,
    pub body_timeout: Duration,
    pub hsts: bool,
    pub timeout: Duration,
}

pub const JSON_CSP: &str = "default-src 'none'; frame-ancestors 'none'";

static X_BUILD_ID: HeaderName = HeaderName::from_static("x-build-id");
static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

pub async fn conventions(
    State(c): State<Arc<Conventions>>,
    mut req: Request,
    next: Next,
) -> Response<Body> {
    let started = Instant::now();
    let rid = request_id::from_headers(req.headers());
    req.extensions_mut().insert(RequestId(rid.clone()));
    req.extensions_mut().insert(BodyLimits {
        max_bytes: c.body_limit,
        timeout: c.body_timeout,
    });
    let refusal = edge::refusal(req.uri(), req.headers(), c.body_limit);
    let req = body::with_deadline(req, c.body_timeout);
    let method = req.method().clone();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |m| m.as_str().to_owned());
    let span = tracing::info_span!(
        "request",
        request_id = %rid,
        http.method = %method,
        http.route = %route,
    );

    let inner = AssertUnwindSafe(next.run(req)).catch_unwind();
    let timeout = c.timeout;
    let mut res = request_id::scope(
        rid.clone(),
        async move {
            if let Some(refused) = refusal {
                return axum::response::IntoResponse::into_response(refused);
            }
            match tokio::time::timeout(timeout, inner).await {
                Ok(Ok(res)) => to_problem_if_bare(res),
                Ok(Err(panic)) => {
                    let msg = panic
                        .downcast_ref::<&str>()
                        .map(|s| (*s).to_owned())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "unknown panic".into());
                    tracing::error!(panic = %msg, "handler panicked");
                    axum::response::IntoResponse::into_response(ApiError::internal_msg(msg))
                }
                Err(_) => axum::response::IntoResponse::into_response(ApiError::Timeout),
            }
        }
        .instrument(span.clone()),
    )
    .await;

    let h = res.headers_mut();
    // Room for the headers added below at once, rather than growing the map several times.
    h.reserve(HEADERS_ADDED);
    if let Ok(v) = HeaderValue::from_str(&rid) {
        h.insert(X_REQUEST_ID.clone(), v);
    }
    h.insert(X_BUILD_ID.clone(), c.build_id.clone());
    security_headers(h, c.hsts);

    let status = res.status();
    let elapsed = started.elapsed();
    let code = res.extensions().get::<ResponseCode>().map(|c| c.0.as_str());
    span.in_scope(|| {
        tracing::info!(
            http.status = status.as_u16(),
            duration_ms = elapsed.as_secs_f64() * 1000.0,
            error.code = code,
            "request completed"
        );
    });
    crate::ops::metrics::record_request(method.as_str(), &route, status.as_u16(), elapsed);
    res
}

/// Framework errors (routing 404/405, body limit 413) arrive without a body we chose: turn
/// them into problems so that every error has the same envelope.
fn to_problem_if_bare(res: Response<Body>) -> Response<Body> {
    let status = res.status();
    if status.as_u16() < 400
        || res.extensions().get::<IsProblem>().is_some()
        || res.extensions().get::<HtmlErrorPage>().is_some()
    {
        return res;
    }
    let code = ErrorCode::for_status(status);
    let detail = match status {
        StatusCode::NOT_FOUND => "no such route".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => "the route does not accept this method".to_owned(),
        s => s.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let mut out = problem_response(&problem(code, detail, None));
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(v) = res.headers().get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out.extensions_mut().insert(ResponseCode(code));
    out
}

fn security_headers(h: &mut axum::http::HeaderMap, hsts: bool) {
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    // Console pages choose `strict-origin`: with `no-referrer` a browser sends `Origin: null`
    // on their form posts, and the console checks that header.
    if !h.contains_key(header::REFERRER_POLICY) {
        h.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
    }
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    // HTML pages set their own nonce-based policy; anything else gets the strictest one.
    if !h.contains_key(header::CONTENT_SECURITY_POLICY) {
        h.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(JSON_CSP),
        );
    }
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    if hsts {
        h.insert(
            header::STRICT_TRANSPORT_SECURITY,
            HeaderValue::from_static("max-age=63072000; includeSubDomains"),
        );
    }
}

/// A fresh nonce for one HTML response's inline style and script.
pub fn csp_nonce() -> String {
    use base64::Engine as _;
    let bytes: [u8; 18] = rand::random();
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// The strict policy of an HTML page whose inline blocks carry `nonce`.
pub fn html_csp(nonce: &str) -> String {
    format!(
        "default-src 'none'; style-src 'nonce-{nonce}'; script-src 'nonce-{nonce}' 'strict-dynamic'; img-src 'self' https: data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
}
