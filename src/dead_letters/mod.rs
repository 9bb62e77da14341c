//! Dead letters: work whose retry budget is spent (or that could not even be attempted), from
//! webhook deliveries and scheduled messages alike, kept with its payload until a replay of it
//! succeeds.

mod replay;
pub mod routes;
pub mod store;

pub use replay::{Replay, replay};

use serde::Serialize;

use crate::access::principal::Environment;
use crate::clock::rfc3339;
use crate::events::EventType;
use crate::ids::{DeadLetterId, DeliveryId, EndpointId, EventId};
use crate::store::JsonText;

crate::text_enum::text_enum! {
    /// What produced a dead letter.
    pub enum DeadLetterSource {
        WebhookDelivery = "webhook_delivery",
        ScheduledMessage = "scheduled_message",
    }
}

crate::text_enum::text_enum! {
    pub enum DeadLetterStatus {
        Open = "open",
        /// A replay is on its way; it resolves the dead letter if it succeeds.
        Replaying = "replaying",
        Resolved = "resolved",
    }
}

crate::text_enum::text_enum! {
    /// Why the work died.
    pub enum DeadLetterReason {
        RetriesExhausted = "retries_exhausted",
        /// Its endpoint had failed: nothing is sent to it until it is re-enabled.
        EndpointFailed = "endpoint_failed",
        /// Its endpoint answered 410 Gone.
        EndpointDisabled = "endpoint_disabled",
        EndpointDeleted = "endpoint_deleted",
        /// The org's subscription stopped covering billable work (sending).
        SubscriptionInactive = "subscription_inactive",
        TierInsufficient = "tier_insufficient",
        ChannelNotConfigured = "channel_not_configured",
        DispatchFailed = "dispatch_failed",
    }
}

impl From<crate::billing::Refusal> for DeadLetterReason {
    fn from(r: crate::billing::Refusal) -> DeadLetterReason {
        match r {
            crate::billing::Refusal::Inactive => DeadLetterReason::SubscriptionInactive,
            crate::billing::Refusal::TierInsufficient => DeadLetterReason::TierInsufficient,
        }
    }
}

/// A dead letter as stored.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DeadLetter {
    pub id: DeadLetterId,
    pub environment: Environment,
    pub source: DeadLetterSource,
    pub delivery_id: Option<DeliveryId>,
    pub endpoint_id: Option<EndpointId>,
    pub event_id: Option<EventId>,
    pub event_type: EventType,
    pub payload: JsonText<serde_json::Value>,
    pub reason: DeadLetterReason,
    pub status: DeadLetterStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub replay_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub resolved_at: Option<i64>,
}

/// Which dead letters a list or a bulk replay covers.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub status: Option<DeadLetterStatus>,
    pub endpoint_id: Option<EndpointId>,
    pub event_type: Option<EventType>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

/// Why a dead letter cannot be replayed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayRefusal {
    NotOpen(DeadLetterStatus),
    /// Its endpoint is failed or disabled (`None`: deleted).
    EndpointUnavailable(Option<crate::webhooks::EndpointStatus>),
    Unsupported,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct DeadLetterOut {
    pub id: DeadLetterId,
    pub object: &'static str,
    pub source: DeadLetterSource,
    pub delivery_id: Option<DeliveryId>,
    pub endpoint_id: Option<EndpointId>,
    pub event_id: Option<EventId>,
    pub event_type: EventType,
    #[schema(value_type = Object)]
    pub payload: serde_json::Value,
    pub reason: DeadLetterReason,
    pub status: DeadLetterStatus,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub replay_count: i64,
    pub livemode: bool,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub created_at: String,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub updated_at: String,
    #[schema(value_type = Option<crate::clock::Rfc3339>)]
    pub resolved_at: Option<String>,
}

impl From<DeadLetter> for DeadLetterOut {
    fn from(d: DeadLetter) -> Self {
        DeadLetterOut {
            id: d.id,
            object: "dead_letter",
            source: d.source,
            delivery_id: d.delivery_id,
            endpoint_id: d.endpoint_id,
            event_id: d.event_id,
            event_type: d.event_type,
            payload: d.payload.into_inner(),
            reason: d.reason,
            status: d.status,
            attempts: d.attempts,
            last_error: d.last_error,
            replay_count: d.replay_count,
            livemode: d.environment.is_live(),
            created_at: rfc3339(d.created_at),
            updated_at: rfc3339(d.updated_at),
            resolved_at: d.resolved_at.map(rfc3339),
        }
    }
}
