//! The ops listener: `/metrics` and `/health/deep`, never on the public listener, optionally
//! behind `RAMPART_OPS_TOKEN`.

pub mod alerts;
pub mod backup;
pub mod deep_health;
pub mod metrics;
pub mod operator;
pub mod status;

use std::sync::Arc;

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::{Next, from_fn_with_state};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use crate::access::secrets::constant_time_eq;
use crate::http::ApiError;
use crate::http::middleware::{Conventions, conventions};
use crate::state::AppState;

pub fn router(state: AppState) -> Router {
    let conv = Arc::new(Conventions {
        build_id: HeaderValue::from_str(&state.config.build_id)
            .unwrap_or(HeaderValue::from_static("unknown")),
        body_limit: 64 * 1024,
        body_timeout: state.config.body_timeout,
        hsts: state.config.hsts,
        timeout: state.config.request_timeout,
    });
    Router::new()
        .route("/metrics", get(get_metrics))
        .route("/health/deep", get(deep_health::get_health_deep))
        .route("/health/live", get(crate::http::meta::get_health_live))
        .route("/health/ready", get(crate::http::meta::get_health_ready))
        .fallback(|| async { ApiError::NotFound })
        .layer(from_fn_with_state(state.clone(), require_ops_token))
        .layer(from_fn_with_state(conv, conventions))
        .with_state(state)
}

async fn require_ops_token(State(state): State<AppState>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.config.ops_token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !constant_time_eq(given.as_bytes(), token.expose().as_bytes()) {
            return ApiError::Unauthenticated(
                crate::http::ErrorCode::Unauthenticated,
                "the ops token is missing or wrong".into(),
            )
            .into_response();
        }
    }
    next.run(req).await
}

async fn get_metrics(State(state): State<AppState>) -> Response {
    // Figures that live in the store are read at scrape time.
    if let Ok(depth) = crate::jobs::queue::depth(&state.db).await {
        for (kind, status, n) in depth {
            ::metrics::gauge!("rampart_jobs", "kind" => kind, "status" => status.as_str())
                .set(n as f64);
        }
    }
    if let Ok(f) = deep_health::figures(&state).await {
        ::metrics::gauge!("rampart_jobs_due_backlog").set(f.due_backlog as f64);
        ::metrics::gauge!("rampart_dead_letters_open").set(f.open_dead_letters as f64);
        ::metrics::gauge!("rampart_workers_live").set(f.live_workers as f64);
        ::metrics::gauge!("rampart_workers_stale").set(f.stale_workers.len() as f64);
        ::metrics::gauge!("rampart_scheduled_overdue").set(f.overdue_scheduled as f64);
    }
    // Counted in an atomic per request (a registry lookup there would cost more than the
    // lease itself) and published here.
    ::metrics::counter!("rampart_limiter_leased_total").absolute(
        state
            .limiter
            .stats
            .leased
            .load(std::sync::atomic::Ordering::Relaxed),
    );
    let (size, idle) = state.db.pool_usage();
    ::metrics::gauge!("rampart_db_pool_connections").set(f64::from(size));
    ::metrics::gauge!("rampart_db_pool_idle_connections").set(f64::from(idle));
    let mut res = metrics::render().into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    res
}
