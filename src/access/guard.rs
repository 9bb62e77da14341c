//! The guard chain, driven by each route's [`Profile`].

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use crate::app::AppState;
use crate::http::ApiError;
use crate::http::routes::Profile;

/// The guard's state: the app and the profile of the route it protects.
#[derive(Clone)]
pub struct GuardState {
    pub app: AppState,
    pub profile: Arc<Profile>,
}

pub async fn guard(State(g): State<GuardState>, req: Request, next: Next) -> Response {
    if g.profile.is_public() {
        return next.run(req).await;
    }
    let _ = &g.app;
    ApiError::Unauthenticated("unauthenticated", "credentials are required".into()).into_response()
}
