//! The console's one authorization path: every page and action is a request to the public
//! API's own route, sent in-process through the API router (guard, profile, handler), as the
//! session's user in the session's org and environment. Scope, permission, role, billing,
//! limits, idempotency and audit are therefore the API's; the console keeps no copy of a rule.
//!
//! The credential is an access token minted for this one request (60 s, the same signing key
//! and claims a login issues, `env: test` in test mode), so it goes through the very guard an
//! API client meets. The client's address, user agent and request id travel with it.

use std::net::SocketAddr;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use serde_json::Value;
use tower::ServiceExt as _;

use super::session::Session;
use crate::access::principal::Environment;
use crate::access::tokens::{self, Claims};
use crate::clock::now_ms;
use crate::http::request_id;
use crate::state::AppState;

/// Lifetime of a minted token: one in-process request.
const TOKEN_TTL_S: i64 = 60;

/// Where the browser's request came from, carried into the API request.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    connect: Option<ConnectInfo<SocketAddr>>,
    headers: HeaderMap,
}

impl Origin {
    pub fn from_parts(parts: &Parts) -> Origin {
        let mut headers = HeaderMap::new();
        for name in [
            header::USER_AGENT.as_str(),
            "x-forwarded-for",
            request_id::HEADER,
        ] {
            for v in parts.headers.get_all(name) {
                headers.append(
                    axum::http::HeaderName::from_static(static_name(name)),
                    v.clone(),
                );
            }
        }
        Origin {
            connect: parts.extensions.get::<ConnectInfo<SocketAddr>>().cloned(),
            headers,
        }
    }
}

fn static_name(n: &str) -> &'static str {
    match n {
        "user-agent" => "user-agent",
        "x-forwarded-for" => "x-forwarded-for",
        _ => request_id::HEADER,
    }
}

/// The API's answer.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Value,
}

impl Answer {
    pub fn ok(&self) -> bool {
        self.status.is_success()
    }

    /// A problem's `detail` (empty for a success).
    pub fn detail(&self) -> String {
        if self.ok() {
            return String::new();
        }
        let code = self.body["code"].as_str().unwrap_or("error");
        let detail = self.body["detail"].as_str().unwrap_or("");
        format!("{detail} ({code})")
    }

    /// A problem's field errors, to show beside their fields.
    pub fn field_errors(&self) -> Vec<(String, String)> {
        self.body["errors"]
            .as_array()
            .map(|a| {
                a.iter()
                    .map(|e| {
                        (
                            e["field"].as_str().unwrap_or("").to_owned(),
                            e["message"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The page's rows (`data`) and next cursor.
    pub fn page(&self) -> (Vec<Value>, Option<String>) {
        let rows = self.body["data"].as_array().cloned().unwrap_or_default();
        let next = self.body["next_cursor"].as_str().map(str::to_owned);
        (rows, next)
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

/// The API router the console sends its requests through.
#[derive(Clone)]
pub struct Api {
    pub router: Router,
}

/// A request of the console, to one API route.
pub struct Call<'a> {
    pub method: Method,
    /// Path and query, built with [`super::html::url`].
    pub uri: String,
    pub body: Option<Value>,
    pub idempotency_key: Option<&'a str>,
}

impl<'a> Call<'a> {
    pub fn get(uri: String) -> Call<'a> {
        Call {
            method: Method::GET,
            uri,
            body: None,
            idempotency_key: None,
        }
    }

    pub fn send(method: Method, uri: String, body: Option<Value>, idem: &'a str) -> Call<'a> {
        Call {
            method,
            uri,
            body,
            idempotency_key: Some(idem).filter(|k| !k.is_empty()),
        }
    }
}

/// The access token of one in-process request.
fn mint(app: &AppState, s: &Session) -> String {
    let now = now_ms() / 1000;
    let claims = Claims {
        iss: tokens::ISSUER.into(),
        aud: tokens::AUDIENCE.into(),
        sub: s.user_id.to_string(),
        org: s.org_id.to_string(),
        role: s.role.as_str().into(),
        sid: "console".into(),
        iat: now,
        nbf: now,
        exp: now + TOKEN_TTL_S,
        jti: uuid::Uuid::now_v7().to_string(),
        env: (s.environment == Environment::Test).then_some(Environment::Test),
    };
    tokens::sign(&app.keys, &claims)
}

/// Sends `call` through the API router as the session's user (anonymously without one: the
/// public routes, such as setting a password with a link).
pub async fn call(
    app: &AppState,
    api: &Api,
    s: Option<&Session>,
    from: &Origin,
    call: Call<'_>,
) -> Answer {
    let mut req = Request::builder().method(call.method).uri(&call.uri);
    if let Some(h) = req.headers_mut() {
        h.extend(from.headers.clone());
        if let Some(s) = s
            && let Ok(v) = HeaderValue::from_str(&format!("Bearer {}", mint(app, s)))
        {
            h.insert(header::AUTHORIZATION, v);
        }
        if let Some(k) = call
            .idempotency_key
            .and_then(|k| HeaderValue::from_str(k).ok())
        {
            h.insert("idempotency-key", k);
        }
        if call.body.is_some() {
            h.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
        }
    }
    if let Some(c) = &from.connect
        && let Some(ext) = req.extensions_mut()
    {
        ext.insert(*c);
    }
    let body = call
        .body
        .map_or_else(Body::empty, |b| Body::from(b.to_string()));
    let Ok(req) = req.body(body) else {
        return failure("the console built an invalid request");
    };
    let res = match api.router.clone().oneshot(req).await {
        Ok(r) => r,
        Err(e) => match e {},
    };
    let (parts, body) = res.into_parts();
    let bytes = axum::body::to_bytes(body, 16 * 1024 * 1024)
        .await
        .unwrap_or_default();
    Answer {
        status: parts.status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        headers: parts.headers,
    }
}

fn failure(detail: &str) -> Answer {
    Answer {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        headers: HeaderMap::new(),
        body: serde_json::json!({ "code": "internal_error", "detail": detail }),
    }
}
