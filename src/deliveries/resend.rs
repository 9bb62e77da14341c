//! `POST /v1/webhooks/{id}/deliveries/{delivery_id}/resend`: one delivery's event sent again
//! to the same endpoint, as a new delivery (Svix's "resend"): the same event id, so the same
//! `webhook-id`, and receivers that deduplicate on it are safe. Dead letters are untouched:
//! replaying one is what resolves it.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde_json::json;

use super::{DeliveryOut, DeliveryStatus, store};
use crate::access::grants::{Permission, Scope};
use crate::access::principal::Principal;
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::{now_ms, rfc3339};
use crate::http::routes::{Profile, Route};
use crate::http::{ApiError, ApiResult, ErrorCode, Path};
use crate::ids::{DeliveryId, EndpointId};
use crate::state::AppState;
use crate::traffic::idempotency::Idem;
use crate::webhooks::{EndpointKind, EndpointStatus};

pub fn route() -> Route {
    Route::post(
        "/v1/webhooks/{id}/deliveries/{delivery_id}/resend",
        Profile::api(Scope::Webhooks, Permission::Write).audited(),
        resend_delivery,
    )
    .path::<EndpointId>()
    .path::<DeliveryId>()
    .error(
        ErrorCode::NotResendable,
        "the endpoint is failed or disabled (re-enable it first), or it is the channel endpoint (a message is sent again by replaying its dead letter)",
    )
    .summary(
        "Send one delivery's event again to its endpoint, as a new delivery with the same webhook-id (a paused endpoint gets it when resumed)",
    )
    .tag("webhooks")
    .returns::<DeliveryOut>(202)
}

/// Why an endpoint cannot take a resend now (`None`: it can).
fn refusal(kind: EndpointKind, status: EndpointStatus) -> Option<String> {
    if kind == EndpointKind::Channel {
        return Some(
            "the channel endpoint's deliveries carry messages: a failed message is sent again by replaying its dead letter".into(),
        );
    }
    match status {
        EndpointStatus::Active | EndpointStatus::Paused => None,
        EndpointStatus::Failed | EndpointStatus::Disabled => Some(format!(
            "the endpoint is {status}; re-enable it (PATCH /v1/webhooks/{{id}} {{\"status\": \"active\"}}) before resending"
        )),
    }
}

async fn resend_delivery(
    pr: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path((id, delivery_id)): Path<(EndpointId, DeliveryId)>,
) -> ApiResult<Response> {
    let t = pr.tenant();
    let mut tx = app.db.begin().await?;
    // A deleted endpoint is not found, as on every route under /v1/webhooks/{id}.
    let ep = crate::webhooks::store::get(&mut tx, &t, &id)
        .await?
        .ok_or(ApiError::NotFound)?;
    let event = store::event_of(&mut tx, &t, &id, &delivery_id)
        .await?
        .ok_or(ApiError::NotFound)?;
    if let Some(why) = refusal(ep.kind, ep.status) {
        return Err(ApiError::Conflict(ErrorCode::NotResendable, why));
    }
    let new_id = super::fanout::create_delivery(&mut tx, &t, &ep.id, &event, false).await?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(t.org()), pr.actor(), "delivery.resent")
            .target("delivery", new_id.as_str())
            .details(
                json!({ "resent_from": delivery_id, "endpoint_id": ep.id, "event_id": event.id }),
            ),
    )
    .await?;
    let out = DeliveryOut {
        id: new_id,
        object: "delivery",
        endpoint_id: ep.id,
        event_id: event.id,
        event_type: event.event_type,
        status: DeliveryStatus::Pending,
        attempts: 0,
        resent_from: Some(delivery_id),
        livemode: t.livemode(),
        created_at: rfc3339(now_ms()),
    };
    idem.commit(tx, StatusCode::ACCEPTED, &out).await
}
