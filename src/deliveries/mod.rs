//! Deliveries: one event (or outbound message) to one endpoint, attempted by the
//! `webhook.deliver` job until it succeeds or its retry budget is spent, each attempt logged.

pub mod batching;
pub mod fanout;
pub mod hourly;
pub mod job;
mod outcome;
mod resend;
pub mod routes;
mod stats;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::access::principal::Tenant;
use crate::events::EventType;
use crate::ids::{AttemptId, DeliveryId, EndpointId, EventId};
use crate::jobs::JobKind;

/// The error class of a test-mode attempt: recorded in the sandbox, never sent, and counted
/// as delivered.
pub const SANDBOX: &str = "sandbox";

crate::text_enum::text_enum! {
    pub enum DeliveryStatus {
        /// Queued or between attempts.
        Pending = "pending",
        Succeeded = "succeeded",
        /// Settled as a dead letter.
        Dead = "dead",
    }
}

/// One attempt in the delivery log.
#[derive(Debug, Serialize, utoipa::ToSchema, sqlx::FromRow)]
pub struct Attempt {
    pub id: AttemptId,
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub attempt: i64,
    /// The receiver's status code; null when no response came back.
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// null on success; else http_status, timeout, connect, dns, tls, ssrf_blocked, …
    pub error_class: Option<String>,
    pub error: Option<String>,
    /// The first 4 KiB of the response body.
    pub response_excerpt: Option<String>,
    pub request_id: Option<String>,
    pub created_at: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct AttemptOut {
    pub id: AttemptId,
    pub object: &'static str,
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub attempt: i64,
    /// The receiver's status code; null when no response came back.
    pub status_code: Option<i64>,
    pub latency_ms: i64,
    /// null on success; else http_status, timeout, connect, dns, tls, ssrf_blocked, …
    pub error_class: Option<String>,
    pub error: Option<String>,
    /// The first 4 KiB of the response body.
    pub response_excerpt: Option<String>,
    pub request_id: Option<String>,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub created_at: String,
}

impl From<Attempt> for AttemptOut {
    fn from(a: Attempt) -> Self {
        AttemptOut {
            id: a.id,
            object: "delivery_attempt",
            delivery_id: a.delivery_id,
            event_id: a.event_id,
            event_type: a.event_type,
            attempt: a.attempt,
            status_code: a.status_code,
            latency_ms: a.latency_ms,
            error_class: a.error_class,
            error: a.error,
            response_excerpt: a.response_excerpt,
            request_id: a.request_id,
            created_at: crate::clock::rfc3339(a.created_at),
        }
    }
}

/// A delivery: one event to one endpoint (what `POST …/resend` answers with).
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeliveryOut {
    pub id: DeliveryId,
    pub object: &'static str,
    pub endpoint_id: EndpointId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    /// Attempts made so far.
    pub attempts: i64,
    /// The delivery this one sends again.
    pub resent_from: Option<DeliveryId>,
    pub livemode: bool,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub created_at: String,
}

/// The `webhook.deliver` job as whoever queues one sees it; [`job::DeliverJob`] runs it.
pub struct Deliver;

impl JobKind for Deliver {
    const KIND: &'static str = "webhook.deliver";
    type Payload = DeliverPayload;
}

#[derive(Debug, Serialize, Deserialize)]
pub struct DeliverPayload {
    pub delivery_id: DeliveryId,
}

/// A delivery being attempted, with the tenant it acts for.
pub(crate) struct Attempting {
    pub delivery: store::Loaded,
    pub tenant: Tenant,
}
