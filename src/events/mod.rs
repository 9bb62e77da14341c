//! Domain events, written in the transaction of the change that causes them (transactional
//! outbox). Each becomes a webhook delivery job per subscribed endpoint in the same
//! transaction, so no event can be lost between "saved" and "queued".

use serde_json::{Value, json};

use crate::access::principal::Tenant;
use crate::clock::{now_ms, rfc3339};
use crate::ids::new_id;
use crate::store::{Arg, DbResult, Tx, insert_many_deferred};

/// The event catalog (SPEC §6).
pub const CATALOG: &[&str] = &[
    "message.created",
    "message.sent",
    "message.failed",
    "message.received",
    "scheduled_message.dispatched",
    "scheduled_message.failed",
    "contact.created",
    "contact.deleted",
    "conversation.created",
    "api_key.created",
    "api_key.revoked",
    "endpoint.failed",
    "test.ping",
];

/// Whether `pattern` (an event type or a wildcard like `message.*` or `*`) names anything.
pub fn is_valid_pattern(pattern: &str) -> bool {
    if pattern == "*" {
        return true;
    }
    if let Some(prefix) = pattern.strip_suffix(".*") {
        return CATALOG.iter().any(|t| t.split('.').next() == Some(prefix));
    }
    CATALOG.contains(&pattern)
}

/// Whether `event_type` matches `pattern`.
pub fn matches(pattern: &str, event_type: &str) -> bool {
    pattern == "*"
        || pattern == event_type
        || pattern
            .strip_suffix(".*")
            .is_some_and(|p| event_type.split('.').next() == Some(p))
}

/// A stored event.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: String,
    pub event_type: String,
    /// The Standard Webhooks payload: `{type, timestamp, data}`.
    pub payload: Value,
}

pub use crate::webhooks::fanout::{Subscribers, subscribers};

/// Records an event and queues its deliveries, inside `tx`.
pub async fn emit(tx: &mut Tx, tenant: &Tenant, event_type: &str, data: Value) -> DbResult<Event> {
    let subscribers = subscribers(tx, tenant).await?;
    emit_to(tx, tenant, subscribers, event_type, data).await
}

/// [`emit`], to the subscribers asked for earlier in the transaction ([`subscribers`]). A
/// write path that asks for them before its first statement saves the writer a round trip
/// on SQLite: the read travels with that statement.
pub async fn emit_to(
    tx: &mut Tx,
    tenant: &Tenant,
    subscribers: Subscribers,
    event_type: &str,
    data: Value,
) -> DbResult<Event> {
    let mut events = emit_many_to(tx, tenant, subscribers, vec![(event_type, data)]).await?;
    Ok(events.remove(0))
}

/// Records several events of one tenant and queues their deliveries, with a constant number
/// of statements whatever their count (the scheduler dispatches in batches).
pub async fn emit_many(
    tx: &mut Tx,
    tenant: &Tenant,
    items: Vec<(&str, Value)>,
) -> DbResult<Vec<Event>> {
    let subscribers = subscribers(tx, tenant).await?;
    emit_many_to(tx, tenant, subscribers, items).await
}

async fn emit_many_to(
    tx: &mut Tx,
    tenant: &Tenant,
    subscribers: Subscribers,
    items: Vec<(&str, Value)>,
) -> DbResult<Vec<Event>> {
    let events = record_many(tx, tenant, items).await?;
    crate::webhooks::fanout::fan_out_many(tx, tenant, subscribers, &events).await?;
    Ok(events)
}

/// Records an event without fanning it out (a test ping goes to one endpoint only).
pub async fn record_only(
    tx: &mut Tx,
    tenant: &Tenant,
    event_type: &str,
    data: Value,
) -> DbResult<Event> {
    let mut events = record_many(tx, tenant, vec![(event_type, data)]).await?;
    Ok(events.remove(0))
}

async fn record_many(
    tx: &mut Tx,
    tenant: &Tenant,
    items: Vec<(&str, Value)>,
) -> DbResult<Vec<Event>> {
    let now = now_ms();
    let mut events = Vec::with_capacity(items.len());
    let mut rows = Vec::with_capacity(items.len());
    for (event_type, data) in items {
        debug_assert!(
            CATALOG.contains(&event_type),
            "{event_type} is not in the catalog"
        );
        let id = new_id("evt");
        let payload = json!({ "type": event_type, "timestamp": rfc3339(now), "data": data });
        rows.push(vec![
            Arg::from(&id),
            Arg::from(tenant.org()),
            Arg::from(tenant.env().as_str()),
            Arg::from(event_type),
            Arg::from(&payload),
            Arg::from(now),
        ]);
        events.push(Event {
            id,
            event_type: event_type.to_owned(),
            payload,
        });
    }
    insert_many_deferred(
        tx,
        "INSERT INTO events (id, org_id, environment, type, payload, created_at)",
        "",
        rows,
    )
    .await?;
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
        assert!(matches("message.*", "message.sent"));
        assert!(!matches("message.*", "contact.created"));
        assert!(matches("*", "test.ping"));
    }
}
