//! Channel messages settle with their delivery: `sent` or `failed`, each with its event. Called
//! by the delivery layer, which passes the tenant's subscribers in (so this file depends on
//! events and the message store only, not on deliveries).

use super::{MessageStatus, store};
use crate::access::principal::Tenant;
use crate::events::{self, EventType, FanOut};
use crate::ids::DeliveryId;
use crate::store::{DbResult, Tx};

/// Settles the messages carried by `deliveries`, if any: `sent` or `failed`, each with its
/// event.
pub(super) async fn mark(
    tx: &mut Tx,
    t: &Tenant,
    fan_out: impl FanOut,
    deliveries: &[&DeliveryId],
    ok: bool,
    error: Option<&str>,
) -> DbResult<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let status = if ok {
        MessageStatus::Sent
    } else {
        MessageStatus::Failed
    };
    let settled = store::settle(tx, t, deliveries, status, error).await?;
    if settled.is_empty() {
        return Ok(());
    }
    let kind = if ok {
        EventType::MessageSent
    } else {
        EventType::MessageFailed
    };
    metrics::counter!("rampart_messages_total", "status" => status.as_str())
        .increment(settled.len() as u64);
    let events = settled.iter().map(|m| (kind, m.event_data())).collect();
    events::emit_many(tx, t, fan_out, events).await?;
    Ok(())
}

/// Called when a delivery settles (delivered, or dead).
pub async fn on_delivery_settled(
    tx: &mut Tx,
    t: &Tenant,
    fan_out: impl FanOut,
    delivery_id: &DeliveryId,
    ok: bool,
) -> DbResult<()> {
    let error = (!ok).then_some("the channel did not accept the message within its retry budget");
    mark(tx, t, fan_out, &[delivery_id], ok, error).await
}

/// Called when deliveries of one tenant were delivered (recorded in a batch).
pub async fn on_deliveries_sent(
    tx: &mut Tx,
    t: &Tenant,
    fan_out: impl FanOut,
    deliveries: &[&DeliveryId],
) -> DbResult<()> {
    mark(tx, t, fan_out, deliveries, true, None).await
}
