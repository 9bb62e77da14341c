//! Routes about the service itself: probes, build id, the API reference.

use std::sync::atomic::Ordering;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Serialize;

use crate::http::middleware::{csp_nonce, html_csp};
use crate::http::routes::{Profile, Route};
use crate::http::{ApiError, ApiResult};
use crate::state::AppState;
use crate::store::migrate;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/", Profile::probe(), get_index)
            .summary("Where to find the reference, the OpenAPI document and the status page")
            .returns::<Index>(200),
        Route::get("/health/live", Profile::probe(), get_health_live)
            .summary("The process is up (never touches the database)")
            .returns::<Health>(200),
        Route::get("/health/ready", Profile::probe(), get_health_ready)
            .summary("The database is reachable, migrations are applied and the instance is not draining")
            .returns::<Health>(200),
        Route::get("/build-id.json", Profile::probe(), get_build_id)
            .summary("The build this instance runs")
            .returns::<BuildId>(200),
        Route::get("/openapi.json", Profile::public(), get_openapi)
            .summary("This API as an OpenAPI 3.1 document")
            .content_type("application/json"),
        Route::get("/docs", Profile::public(), get_docs)
            .summary("A readable API reference")
            .content_type("text/html"),
    ]
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Index {
    pub name: &'static str,
    pub version: &'static str,
    pub docs: &'static str,
    pub openapi: &'static str,
    pub status: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct Health {
    /// `pass`
    pub status: &'static str,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct BuildId {
    pub build_id: String,
    pub version: &'static str,
}

async fn get_index() -> axum::Json<Index> {
    axum::Json(Index {
        name: "rampart",
        version: env!("CARGO_PKG_VERSION"),
        docs: "/docs",
        openapi: "/openapi.json",
        status: "/status",
    })
}

pub async fn get_health_live() -> axum::Json<Health> {
    axum::Json(Health { status: "pass" })
}

pub async fn get_health_ready(State(state): State<AppState>) -> ApiResult<axum::Json<Health>> {
    if state.draining.load(Ordering::Acquire) {
        return Err(ApiError::Unavailable(
            "the instance is shutting down".into(),
        ));
    }
    if let Err(e) = state.db.ping().await {
        tracing::warn!(error = %e, "readiness: database unreachable");
        return Err(ApiError::Unavailable("the database is unreachable".into()));
    }
    if !state.migrated.load(Ordering::Acquire) {
        return Err(ApiError::Unavailable(
            "migrations are not applied yet".into(),
        ));
    }
    match migrate::is_current(&state.db).await {
        Ok(true) => Ok(axum::Json(Health { status: "pass" })),
        Ok(false) => Err(ApiError::Unavailable(
            "migrations are not applied yet".into(),
        )),
        Err(_) => Err(ApiError::Unavailable("the database is unreachable".into())),
    }
}

async fn get_build_id(State(state): State<AppState>) -> axum::Json<BuildId> {
    axum::Json(BuildId {
        build_id: state.config.build_id.clone(),
        version: env!("CARGO_PKG_VERSION"),
    })
}

async fn get_openapi(State(state): State<AppState>) -> Response {
    let mut res = axum::Json(state.openapi()).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=300"),
    );
    res
}

async fn get_docs(State(state): State<AppState>) -> Response {
    let nonce = csp_nonce();
    let body = crate::http::docs::render(state.openapi(), &nonce);
    html_response(StatusCode::OK, body, &nonce)
}

/// An HTML response with its own nonce-based CSP.
pub fn html_response(status: StatusCode, body: String, nonce: &str) -> Response {
    let mut res = (status, Html(body)).into_response();
    if let Ok(v) = HeaderValue::from_str(&html_csp(nonce)) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res
}
