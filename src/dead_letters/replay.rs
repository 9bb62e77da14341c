//! Replaying a dead letter: new work (a delivery, or the scheduled message pending again)
//! linked to it, so that its outcome resolves or reopens the dead letter.

use super::{DeadLetter, DeadLetterSource, DeadLetterStatus, ReplayRefusal, store};
use crate::access::principal::Tenant;
use crate::events::Event;
use crate::store::{DbResult, Tx};
use crate::webhooks::EndpointStatus;

/// What a replay started.
pub enum Replay {
    Delivery(crate::ids::DeliveryId),
    Dispatch(crate::ids::ScheduledMessageId),
}

impl Replay {
    pub fn id(&self) -> &str {
        match self {
            Replay::Delivery(d) => d.as_str(),
            Replay::Dispatch(s) => s.as_str(),
        }
    }
}

/// Replays one open dead letter inside `tx`; it is `replaying` until its new work succeeds or
/// dies.
pub async fn replay(
    tx: &mut Tx,
    t: &Tenant,
    dl: &DeadLetter,
) -> DbResult<Result<Replay, ReplayRefusal>> {
    if dl.status != DeadLetterStatus::Open {
        return Ok(Err(ReplayRefusal::NotOpen(dl.status)));
    }
    let started = match dl.source {
        DeadLetterSource::WebhookDelivery => {
            let (Some(endpoint_id), Some(event_id)) = (&dl.endpoint_id, &dl.event_id) else {
                return Ok(Err(ReplayRefusal::Unsupported));
            };
            match crate::webhooks::store::get(tx, t, endpoint_id).await? {
                Some(e) if matches!(e.status, EndpointStatus::Active | EndpointStatus::Paused) => {}
                Some(e) => return Ok(Err(ReplayRefusal::EndpointUnavailable(Some(e.status)))),
                None => return Ok(Err(ReplayRefusal::EndpointUnavailable(None))),
            }
            let event = Event {
                id: event_id.clone(),
                event_type: dl.event_type,
                payload: dl.payload.0.clone(),
            };
            let delivery =
                crate::deliveries::fanout::create_delivery(tx, t, endpoint_id, &event, false)
                    .await?;
            crate::deliveries::store::link_dead_letter(tx, &delivery, &dl.id).await?;
            crate::messages::store::on_replay(tx, t, dl.delivery_id.as_ref(), &delivery).await?;
            Replay::Delivery(delivery)
        }
        DeadLetterSource::ScheduledMessage => {
            match crate::scheduled::store::replay_dead_letter(tx, t, dl).await? {
                Some(id) => Replay::Dispatch(id),
                None => return Ok(Err(ReplayRefusal::Unsupported)),
            }
        }
    };
    store::mark_replaying(tx, &dl.id).await?;
    Ok(Ok(started))
}
