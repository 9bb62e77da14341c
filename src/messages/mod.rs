//! Messages: outbound ones travel as a signed delivery to the org's channel endpoint (2xx →
//! `sent`, retry budget spent → `failed` with a dead letter); inbound ones are reported by the
//! channel. Every change emits its event in the same transaction.

pub mod routes;
pub mod settle;
pub mod store;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::access::principal::{Environment, Tenant};
use crate::clock::rfc3339;
use crate::deliveries::fanout::{create_delivery, subscribers};
use crate::events::{self, EventType};
use crate::http::validate::check_object;
use crate::http::{ApiError, Checks, ErrorCode, Validate};
use crate::ids::{ConversationId, DeliveryId, MessageId, ScheduledMessageId};
use crate::store::{DbResult, JsonText, Tx};
use crate::webhooks::EndpointStatus;

crate::text_enum::text_enum! {
    pub enum Direction {
        Outbound = "outbound",
        Inbound = "inbound",
    }
}

crate::text_enum::text_enum! {
    pub enum MessageStatus {
        Queued = "queued",
        Sent = "sent",
        Failed = "failed",
        Received = "received",
    }
}

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Message {
    pub id: MessageId,
    pub conversation_id: ConversationId,
    pub direction: Direction,
    pub body: Option<String>,
    pub metadata: JsonText<Map<String, Value>>,
    pub status: MessageStatus,
    pub delivery_id: Option<DeliveryId>,
    pub scheduled_message_id: Option<ScheduledMessageId>,
    pub error: Option<String>,
    pub environment: Environment,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
}

impl Message {
    /// The event payload (`data`) of this message.
    pub fn event_data(&self) -> Value {
        json!({
            "id": self.id,
            "conversation_id": self.conversation_id,
            "direction": self.direction,
            "body": self.body,
            "metadata": self.metadata.0,
            "status": self.status,
            "scheduled_message_id": self.scheduled_message_id,
            "livemode": self.environment.is_live(),
        })
    }
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MessageIn {
    pub conversation_id: ConversationId,
    /// 1-4096 characters, not blank.
    #[schema(schema_with = crate::http::text::text::<1, 4096>)]
    pub body: String,
    /// A JSON object of at most 100 keys and 16 KiB.
    #[schema(schema_with = metadata_schema)]
    pub metadata: Option<Map<String, Value>>,
}

/// The most keys `metadata` may have.
pub const METADATA_MAX_KEYS: usize = 100;

/// The schema of `metadata` (shared with scheduled messages).
pub fn metadata_schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
    crate::http::validate::object_schema(
        METADATA_MAX_KEYS,
        "A JSON object of at most 100 keys of 1-100 characters, 16 KiB as JSON.",
    )
}

/// The body and metadata rules, shared with scheduled messages.
pub fn check_content(c: &mut Checks, body: &str, metadata: Option<&Map<String, Value>>) {
    c.len("body", body, 1, 4096);
    c.check(!body.trim().is_empty(), "body", "must not be blank");
    if let Some(m) = metadata {
        check_object(c, "metadata", m, METADATA_MAX_KEYS, 16 * 1024);
    }
}

impl Validate for MessageIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        check_content(&mut c, &self.body, self.metadata.as_ref());
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct MessageOut {
    pub id: MessageId,
    pub object: &'static str,
    pub conversation_id: ConversationId,
    pub direction: Direction,
    /// null once erased
    pub body: Option<String>,
    #[schema(value_type = Object)]
    pub metadata: Map<String, Value>,
    pub status: MessageStatus,
    pub scheduled_message_id: Option<ScheduledMessageId>,
    pub error: Option<String>,
    pub livemode: bool,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub created_at: String,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub updated_at: String,
    #[schema(value_type = Option<crate::clock::Rfc3339>)]
    pub sent_at: Option<String>,
}

impl From<Message> for MessageOut {
    fn from(m: Message) -> Self {
        MessageOut {
            id: m.id,
            object: "message",
            conversation_id: m.conversation_id,
            direction: m.direction,
            body: m.body,
            metadata: m.metadata.into_inner(),
            status: m.status,
            scheduled_message_id: m.scheduled_message_id,
            error: m.error,
            livemode: m.environment.is_live(),
            created_at: rfc3339(m.created_at),
            updated_at: rfc3339(m.updated_at),
            sent_at: m.sent_at.map(rfc3339),
        }
    }
}

/// Why an outbound message cannot be queued.
#[derive(Debug)]
pub enum SendRefusal {
    NoChannel,
}

impl SendRefusal {
    pub fn into_api_error(self) -> ApiError {
        match self {
            SendRefusal::NoChannel => ApiError::Rule {
                code: ErrorCode::ChannelNotConfigured,
                field: "conversation_id",
                detail: "the org has no channel endpoint: create a webhook endpoint with kind \"channel\" first".into(),
            },
        }
    }
}

/// Queues an outbound message on `conversation_id` (which the caller checked belongs to the
/// tenant): the message row, its `message.created` event, and the delivery to the channel.
pub async fn create_outbound(
    tx: &mut Tx,
    t: &Tenant,
    conversation_id: &ConversationId,
    body: &str,
    metadata: &Map<String, Value>,
    scheduled_message_id: Option<&ScheduledMessageId>,
) -> DbResult<Result<Message, SendRefusal>> {
    // Asked for now, the subscribers travel with the channel's lookup (see `Tx::prefetch`).
    let fan_out = subscribers(tx, t).await?;
    let Some(channel) = crate::webhooks::store::channel(tx, t).await? else {
        return Ok(Err(SendRefusal::NoChannel));
    };
    let id = match scheduled_message_id {
        // One message per scheduled message, whatever happens: the id says which.
        Some(s) => MessageId::for_scheduled(s),
        None => MessageId::new(),
    };
    let mut msg = store::insert_outbound(
        tx,
        t,
        &id,
        conversation_id,
        body,
        metadata,
        scheduled_message_id,
    )
    .await?;
    let event = events::emit(tx, t, fan_out, EventType::MessageCreated, msg.event_data()).await?;
    let dead = matches!(
        channel.status,
        EndpointStatus::Failed | EndpointStatus::Disabled
    );
    let delivery = create_delivery(tx, t, &channel.id, &event, dead).await?;
    store::set_delivery(tx, &id, &delivery).await?;
    msg.delivery_id = Some(delivery.clone());
    if dead {
        let error = "the channel endpoint is not active";
        let fan_out = subscribers(tx, t).await?;
        settle::mark(tx, t, fan_out, &[&delivery], false, Some(error)).await?;
        msg.status = MessageStatus::Failed;
    }
    Ok(Ok(msg))
}
