//! Data-subject rights: export everything held about a contact, and erase it.
//!
//! Erasure keeps a tombstone (the contact's id, a hash of its external key, times) so that
//! audit entries and counts still resolve, and removes the personal data everywhere it was
//! copied: the contact row, message bodies and metadata, pending scheduled messages (canceled),
//! event payloads, dead-letter payloads, sandbox records and receivers' response excerpts.
//! Never billing-gated: rights do not lapse with a subscription.

pub mod routes;
pub mod store;

use serde::Serialize;
use serde_json::Value;

use crate::access::principal::Tenant;
use crate::contacts::ContactOut;
use crate::conversations::ConversationOut;
use crate::ids::ContactId;
use crate::messages::MessageOut;
use crate::scheduled::ScheduledOut;
use crate::store::{DbResult, Tx};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubjectExport {
    pub object: &'static str,
    pub contact: ContactOut,
    pub conversations: Vec<ConversationOut>,
    pub messages: Vec<MessageOut>,
    pub scheduled_messages: Vec<ScheduledOut>,
    /// Events whose payload concerns the contact.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErasureOut {
    pub object: &'static str,
    pub contact_id: ContactId,
    pub erased: bool,
    pub messages_erased: u64,
    pub events_redacted: u64,
    pub dead_letters_redacted: u64,
}

/// What an erasure changed.
pub struct Erased {
    pub messages: u64,
    pub events: u64,
    pub dead_letters: u64,
}

/// Erases a contact's personal data everywhere it was copied (not the contact row itself:
/// [`crate::contacts::store::erase`] does that), inside `tx`.
pub async fn erase_by_id(tx: &mut Tx, t: &Tenant, contact: &ContactId) -> DbResult<Erased> {
    let ids = store::subject_ids(tx, t, contact).await?;
    let events = store::events_mentioning(tx, t, &ids).await?;
    let mut dead_letters = 0;
    for (id, payload) in &events {
        dead_letters += store::redact_event(tx, id, payload).await?;
    }
    // Dead letters of scheduled messages carry the body in their own payload.
    for id in &ids {
        dead_letters += store::redact_scheduled_dead_letters(tx, t, id).await?;
    }
    let messages = crate::messages::store::erase_for_contact(tx, t, contact).await?;
    Ok(Erased {
        messages,
        events: events.len() as u64,
        dead_letters,
    })
}
