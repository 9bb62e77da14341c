//! Scheduled messages, and the scheduler that dispatches them ([`dispatch::Scheduler`]).
//!
//! The `scheduled_messages` table is its own queue: a worker takes due items in batches,
//! sleeping until the next `send_at` rather than ticking by the minute. A batch is taken and
//! dispatched in one transaction with a constant number of statements (the items marked
//! dispatched under row locks — Postgres `SKIP LOCKED`, SQLite's single writer — then message
//! rows, events, deliveries and jobs inserted many rows at a time), so an item is dispatched
//! exactly once: a worker that dies mid-batch leaves a rolled-back transaction and the items
//! pending. If the batch fails, its halves are retried on their own, down to single items, so
//! one poisoned item never holds up the others; it alone fails, with a dead letter.

pub mod dispatch;
pub mod routes;
pub mod store;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use dispatch::Scheduler;

use crate::access::principal::Environment;
use crate::clock::{Rfc3339, now_ms, rfc3339};
use crate::http::{ApiError, Checks, Validate};
use crate::ids::{ContactId, ConversationId, MessageId, ScheduledMessageId};
use crate::store::JsonText;

/// How far ahead a message may be scheduled.
pub const MAX_AHEAD_MS: i64 = 366 * 86_400_000;

crate::text_enum::text_enum! {
    pub enum ScheduledStatus {
        Pending = "pending",
        /// Left by versions before the one-transaction dispatch (migration 0008 resets them).
        Dispatching = "dispatching",
        Dispatched = "dispatched",
        Canceled = "canceled",
        Failed = "failed",
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct ScheduledMessage {
    pub id: ScheduledMessageId,
    pub conversation_id: ConversationId,
    pub body: Option<String>,
    pub metadata: JsonText<Map<String, Value>>,
    pub send_at: i64,
    pub status: ScheduledStatus,
    pub message_id: Option<MessageId>,
    pub last_error: Option<String>,
    pub environment: Environment,
    pub created_at: i64,
    pub updated_at: i64,
    pub dispatched_at: Option<i64>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ScheduledIn {
    pub conversation_id: Option<ConversationId>,
    /// Scheduling to a contact is refused (422 unsupported_target): start a conversation.
    pub contact_id: Option<ContactId>,
    /// 1-4096 characters, not blank.
    #[schema(schema_with = crate::http::text::text::<1, 4096>)]
    pub body: String,
    /// In the future, at most 366 days ahead.
    pub send_at: Rfc3339,
    #[schema(schema_with = crate::messages::metadata_schema)]
    pub metadata: Option<Map<String, Value>>,
}

impl Validate for ScheduledIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        crate::messages::check_content(&mut c, &self.body, self.metadata.as_ref());
        c.check(
            self.send_at.ms() <= now_ms() + MAX_AHEAD_MS,
            "send_at",
            "must be at most 366 days ahead",
        );
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScheduledOut {
    pub id: ScheduledMessageId,
    pub object: &'static str,
    pub conversation_id: ConversationId,
    pub body: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub send_at: String,
    pub status: ScheduledStatus,
    /// The message it became, once dispatched.
    pub message_id: Option<MessageId>,
    pub last_error: Option<String>,
    pub livemode: bool,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub created_at: String,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub updated_at: String,
    #[schema(value_type = Option<crate::clock::Rfc3339>)]
    pub dispatched_at: Option<String>,
}

impl From<ScheduledMessage> for ScheduledOut {
    fn from(s: ScheduledMessage) -> Self {
        ScheduledOut {
            id: s.id,
            object: "scheduled_message",
            conversation_id: s.conversation_id,
            body: s.body,
            metadata: s.metadata.into_inner(),
            send_at: rfc3339(s.send_at),
            status: s.status,
            message_id: s.message_id,
            last_error: s.last_error,
            livemode: s.environment.is_live(),
            created_at: rfc3339(s.created_at),
            updated_at: rfc3339(s.updated_at),
            dispatched_at: s.dispatched_at.map(rfc3339),
        }
    }
}
