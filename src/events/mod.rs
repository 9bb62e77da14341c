//! Domain events, written in the transaction of the change that causes them (transactional
//! outbox). Each is handed to a [`FanOut`] in the same transaction, which turns it into
//! deliveries (the webhook deliveries implement it), so no event can be lost between "saved"
//! and "queued". This module knows nothing of webhooks.

mod store;

use std::future::Future;

use serde_json::{Value, json};

use crate::access::principal::Tenant;
use crate::clock::{now_ms, rfc3339};
use crate::ids::EventId;
use crate::store::{DbResult, Tx};

crate::text_enum::text_enum! {
    /// The event catalog (SPEC §6).
    pub enum EventType {
        MessageCreated = "message.created",
        MessageSent = "message.sent",
        MessageFailed = "message.failed",
        MessageReceived = "message.received",
        ScheduledMessageDispatched = "scheduled_message.dispatched",
        ScheduledMessageFailed = "scheduled_message.failed",
        ContactCreated = "contact.created",
        ContactDeleted = "contact.deleted",
        ConversationCreated = "conversation.created",
        ApiKeyCreated = "api_key.created",
        ApiKeyRevoked = "api_key.revoked",
        EndpointFailed = "endpoint.failed",
        TestPing = "test.ping",
    }
}

impl EventType {
    /// The part before the dot (`message` for `message.sent`), which wildcards name.
    pub fn family(self) -> &'static str {
        let s = self.as_str();
        s.split_once('.').map_or(s, |(f, _)| f)
    }
}

/// Every subscription pattern [`is_valid_pattern`] accepts: `*`, each family's `family.*`
/// and each event type, derived from the catalog.
pub fn patterns() -> Vec<String> {
    let mut out = vec!["*".to_owned()];
    for t in EventType::ALL {
        let wildcard = format!("{}.*", t.family());
        if !out.contains(&wildcard) {
            out.push(wildcard);
        }
    }
    out.extend(EventType::ALL.iter().map(|t| t.as_str().to_owned()));
    out
}

/// A subscription pattern as the OpenAPI document states it: one of [`patterns`].
pub struct EventPattern;

impl utoipa::PartialSchema for EventPattern {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(patterns()))
            .into()
    }
}

impl utoipa::ToSchema for EventPattern {}

/// Whether `pattern` (an event type or a wildcard like `message.*` or `*`) names anything.
pub fn is_valid_pattern(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix(".*") {
        return EventType::ALL.iter().any(|t| t.family() == prefix);
    }
    EventType::parse(pattern).is_some()
}

/// Whether `event_type` matches `pattern`.
pub fn matches(pattern: &str, event_type: EventType) -> bool {
    pattern == "*"
        || pattern == event_type.as_str()
        || pattern
            .strip_suffix(".*")
            .is_some_and(|p| event_type.family() == p)
}

/// A stored event.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: EventId,
    pub event_type: EventType,
    /// The Standard Webhooks payload: `{type, timestamp, data}`.
    pub payload: Value,
}

/// Turns events recorded in a transaction into deliveries, in the same transaction.
pub trait FanOut: Send {
    fn fan_out(
        self,
        tx: &mut Tx,
        tenant: &Tenant,
        events: &[Event],
    ) -> impl Future<Output = DbResult<()>> + Send;
}

/// Records nothing beyond the event: for an event that goes to one endpoint only (a test
/// ping, whose delivery its route creates).
pub struct NoFanOut;

impl FanOut for NoFanOut {
    async fn fan_out(self, _: &mut Tx, _: &Tenant, _: &[Event]) -> DbResult<()> {
        Ok(())
    }
}

/// Records an event and hands it to `fan_out`, inside `tx`.
pub async fn emit(
    tx: &mut Tx,
    tenant: &Tenant,
    fan_out: impl FanOut,
    event_type: EventType,
    data: Value,
) -> DbResult<Event> {
    let mut events = emit_many(tx, tenant, fan_out, vec![(event_type, data)]).await?;
    events.pop().ok_or(crate::store::DbError::NotFound)
}

/// Records several events of one tenant and hands them to `fan_out`, with a constant number
/// of statements whatever their count (the scheduler dispatches in batches).
pub async fn emit_many(
    tx: &mut Tx,
    tenant: &Tenant,
    fan_out: impl FanOut,
    items: Vec<(EventType, Value)>,
) -> DbResult<Vec<Event>> {
    let now = now_ms();
    let events: Vec<Event> = items
        .into_iter()
        .map(|(event_type, data)| Event {
            id: EventId::new(),
            event_type,
            payload: json!({ "type": event_type, "timestamp": rfc3339(now), "data": data }),
        })
        .collect();
    store::insert_many(tx, tenant, &events, now).await?;
    fan_out.fan_out(tx, tenant, &events).await?;
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        assert!(is_valid_pattern("message.*"));
        assert!(is_valid_pattern("contact.created"));
        assert!(is_valid_pattern("*"));
        assert!(!is_valid_pattern("nope.*"));
        assert!(!is_valid_pattern("message.exploded"));
        assert!(matches("message.*", EventType::MessageSent));
        assert!(!matches("message.*", EventType::ContactCreated));
        assert!(matches("*", EventType::TestPing));
        assert_eq!(
            EventType::ScheduledMessageFailed.family(),
            "scheduled_message"
        );
    }
}
