//! The sandbox sink: what test mode would have sent, recorded instead of sent.

pub mod routes;
pub mod store;

use serde::Serialize;

use crate::events::EventType;
use crate::ids::{DeliveryId, EndpointId, EventId, SandboxDeliveryId};
use crate::store::JsonText;

/// A recorded sandbox delivery.
#[derive(Debug, sqlx::FromRow)]
pub struct SandboxDelivery {
    pub id: SandboxDeliveryId,
    pub endpoint_id: EndpointId,
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub url: String,
    pub headers: JsonText<serde_json::Value>,
    pub payload: JsonText<serde_json::Value>,
    pub created_at: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SandboxDeliveryOut {
    pub id: SandboxDeliveryId,
    pub object: &'static str,
    pub endpoint_id: EndpointId,
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    pub event_type: EventType,
    /// Where it would have gone.
    pub url: String,
    /// The Standard Webhooks headers it would have carried.
    #[schema(value_type = Object)]
    pub headers: serde_json::Value,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub created_at: String,
}

impl From<SandboxDelivery> for SandboxDeliveryOut {
    fn from(s: SandboxDelivery) -> Self {
        SandboxDeliveryOut {
            id: s.id,
            object: "sandbox_delivery",
            endpoint_id: s.endpoint_id,
            delivery_id: s.delivery_id,
            event_id: s.event_id,
            event_type: s.event_type,
            url: s.url,
            headers: s.headers.into_inner(),
            payload: s.payload.into_inner(),
            created_at: crate::clock::rfc3339(s.created_at),
        }
    }
}
