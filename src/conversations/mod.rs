//! Conversations: a contact on a channel. Messages and scheduled messages belong to one.

pub mod routes;
pub mod store;

use serde::{Deserialize, Serialize};

use crate::access::principal::{Environment, Tenant};
use crate::clock::rfc3339;
use crate::http::{ApiError, ApiResult, Checks, ErrorCode, Validate};
use crate::ids::{ContactId, ConversationId};
use crate::store::Exec;

#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Conversation {
    pub id: ConversationId,
    pub contact_id: ContactId,
    pub channel: String,
    pub environment: Environment,
    pub created_at: i64,
}

/// The tenant's conversation `id`, or 422 `conversation_not_found` (also for another org's:
/// no existence leaks).
pub async fn require(
    ex: &mut impl Exec,
    t: &Tenant,
    id: &ConversationId,
) -> ApiResult<Conversation> {
    store::get(ex, t, id).await?.ok_or_else(|| ApiError::Rule {
        code: ErrorCode::ConversationNotFound,
        field: "conversation_id",
        detail: "no such conversation in this org".into(),
    })
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConversationIn {
    pub contact_id: ContactId,
    /// The channel's name, e.g. sms, whatsapp, email: 1-32 of [a-z0-9_-].
    #[schema(min_length = 1, max_length = 32, pattern = "^[a-z0-9_-]{1,32}$")]
    pub channel: String,
}

impl Validate for ConversationIn {
    fn validate(&self) -> Result<(), ApiError> {
        let mut c = Checks::new();
        c.check(
            (1..=32).contains(&self.channel.len())
                && self.channel.bytes().all(|b| {
                    b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                }),
            "channel",
            "must be 1-32 characters of a-z, 0-9, _ and -",
        );
        c.finish()
    }
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ConversationOut {
    pub id: ConversationId,
    pub object: &'static str,
    pub contact_id: ContactId,
    pub channel: String,
    pub livemode: bool,
    #[schema(value_type = crate::clock::Rfc3339)]
    pub created_at: String,
}

impl From<Conversation> for ConversationOut {
    fn from(c: Conversation) -> Self {
        ConversationOut {
            id: c.id,
            object: "conversation",
            contact_id: c.contact_id,
            channel: c.channel,
            livemode: c.environment.is_live(),
            created_at: rfc3339(c.created_at),
        }
    }
}
