//! The console's pages: each one a view of API answers, each action one API request.

pub mod audit;
pub mod branding;
pub mod common;
pub mod contacts;
pub mod dead_letters;
pub mod exports;
pub mod gdpr;
pub mod keys;
pub mod members;
pub mod messaging;
pub mod overview;
mod usage;
pub mod webhooks;

use axum::Router;
use axum::routing::{get, post};

use crate::state::AppState;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/console/api-keys", get(keys::list).post(keys::create))
        .route("/console/api-keys/{id}/rotate", post(keys::rotate))
        .route("/console/api-keys/{id}/revoke", post(keys::revoke))
        .route("/console/members", get(members::list).post(members::invite))
        .route("/console/members/{id}/role", post(members::change_role))
        .route("/console/members/{id}/remove", post(members::remove))
        .route(
            "/console/webhooks",
            get(webhooks::list).post(webhooks::create),
        )
        .route("/console/webhooks/{id}", get(webhooks::detail))
        .route("/console/webhooks/{id}/edit", post(webhooks::edit))
        .route("/console/webhooks/{id}/status", post(webhooks::status))
        .route(
            "/console/webhooks/{id}/rotate-secret",
            post(webhooks::rotate_secret),
        )
        .route("/console/webhooks/{id}/test", post(webhooks::test))
        .route(
            "/console/webhooks/{id}/deliveries/{delivery_id}/resend",
            post(webhooks::resend),
        )
        .route("/console/dead-letters", get(dead_letters::list))
        .route(
            "/console/dead-letters/replay",
            post(dead_letters::bulk_replay),
        )
        .route("/console/dead-letters/{id}", get(dead_letters::detail))
        .route(
            "/console/dead-letters/{id}/replay",
            post(dead_letters::replay),
        )
        .route("/console/contacts", get(contacts::list))
        .route("/console/contacts/{id}", get(contacts::detail))
        .route("/console/audit", get(audit::list))
        .route(
            "/console/branding",
            get(branding::show).post(branding::save),
        )
        .route("/console/conversations", get(messaging::conversations))
        .route("/console/conversations/{id}", get(messaging::conversation))
        .route("/console/messages", get(messaging::messages))
        .route("/console/scheduled", get(messaging::scheduled))
        .route("/console/scheduled/{id}/cancel", post(messaging::cancel))
        .route("/console/gdpr", get(gdpr::show))
        .route("/console/gdpr/erase", post(gdpr::erase))
        .route("/console/exports", get(exports::list).post(exports::start))
        .route("/console/exports/{id}", get(exports::detail))
}
