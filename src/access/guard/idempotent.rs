//! The guard's last step on routes that take an `Idempotency-Key`: the handler runs under a
//! claim on the key, and its response is recorded for replay (see
//! [`crate::traffic::idempotency`]).

use axum::body::Body;
use axum::extract::Request;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::access::principal::Principal;
use crate::http::body::BodyLimits;
use crate::http::routes::{Idempotency, Profile};
use crate::http::{ApiError, ErrorCode};
use crate::state::AppState;
use crate::traffic::idempotency::{self, Begin, Completed};

/// Runs the handler under an `Idempotency-Key` claim (see [`crate::traffic::idempotency`]).
pub(super) async fn run(
    app: &AppState,
    profile: &Profile,
    p: &Principal,
    parts: axum::http::request::Parts,
    body: Body,
    next: Next,
) -> Response {
    let key = match parts.headers.get(&idempotency::HEADER) {
        None if profile.idempotency == Idempotency::Required => {
            return ApiError::Invalid(
                ErrorCode::IdempotencyKeyRequired,
                "this route requires an Idempotency-Key header".into(),
            )
            .into_response();
        }
        None => return next.run(Request::from_parts(parts, body)).await,
        Some(v) => match idempotency::parse_key(v) {
            Ok(k) => k,
            Err(e) => return e.into_response(),
        },
    };
    // The body is part of the key's fingerprint: read whole, under the request's limits
    // (too large is 413, a stalled upload 408).
    let limits = parts.extensions.get::<BodyLimits>().copied();
    let bytes = match crate::http::body::read_body(body, limits).await {
        Ok(b) => b,
        Err(e) => return e.into_response(),
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or_else(|| parts.uri.path().to_owned(), |p| p.as_str().to_owned());
    let fp = idempotency::fingerprint(parts.method.as_str(), &path, &bytes);
    let ttl = i64::try_from(app.config.idempotency_ttl.as_millis()).unwrap_or(86_400_000);
    let lock = i64::try_from(app.config.request_timeout.as_millis()).unwrap_or(30_000) + 5_000;
    let claim = match idempotency::begin(&app.db, &p.tenant(), &key, &fp, ttl, lock).await {
        Ok(Begin::Claimed(c)) => c,
        Ok(Begin::Replay { status, body }) => return idempotency::replay(status, body),
        Ok(Begin::Reused) => {
            return ApiError::Rule {
                code: ErrorCode::IdempotencyKeyReused,
                field: "Idempotency-Key",
                detail: "this Idempotency-Key was used with a different request".into(),
            }
            .into_response();
        }
        Ok(Begin::InFlight) => {
            return ApiError::Conflict(
                ErrorCode::IdempotencyInFlight,
                "a request with this Idempotency-Key is still running; retry shortly".into(),
            )
            .into_response();
        }
        Err(e) => return ApiError::from(e).into_response(),
    };
    let mut parts = parts;
    parts.extensions.insert(claim.clone());
    let res = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if res.extensions().get::<Completed>().is_some() {
        return res;
    }
    if res.status().is_success() {
        // A handler with nothing to commit: record its response now.
        let (rparts, rbody) = res.into_parts();
        let bytes = axum::body::to_bytes(rbody, usize::MAX)
            .await
            .unwrap_or_default();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        if let Err(e) =
            idempotency::complete_detached(&app.db, &claim, rparts.status.as_u16(), &text).await
        {
            tracing::warn!(error = %e, "could not record an idempotent response");
        }
        return Response::from_parts(rparts, Body::from(bytes));
    }
    if let Err(e) = idempotency::release(&app.db, &claim).await {
        tracing::warn!(error = %e, "could not release an idempotency claim");
    }
    res
}
