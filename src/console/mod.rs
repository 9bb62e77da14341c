//! The web console (SPEC §10): server-rendered HTML under `/console`, in the binary, with no
//! script and no asset from elsewhere. Sign-in reuses the API's login check
//! (`sessions::routes::verify_login`); the session is a server-side row ([`session`]); every
//! page and action is a request to the matching public API route, sent in-process through the
//! API router as the session's user ([`api`]), so the console has no authorization of its own.
//! See docs/CONSOLE.md.

pub mod api;
pub mod html;
pub mod session;

mod extract;
mod login;
mod pages;

use axum::routing::{get, post};
use axum::{Extension, Router};

use crate::state::AppState;

/// The console's routes. `api` is the public API router every action goes through.
pub fn router(api: Router) -> Router<AppState> {
    Router::new()
        .route("/console", get(pages::overview::page))
        .route("/console/login", get(login::form).post(login::submit))
        .route("/console/logout", post(login::logout))
        .route(
            "/console/set-password",
            get(login::set_password_form).post(login::set_password),
        )
        .route("/console/environment", post(login::environment))
        .merge(pages::routes())
        .layer(Extension(api::Api { router: api }))
}
