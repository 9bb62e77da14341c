//! Turning events into deliveries: one per subscribed endpoint, each with its job, in the
//! events' own transaction ([`Subscribers`] is the webhooks' [`FanOut`]). A `failed` endpoint
//! receives nothing: its events become open dead letters at once (`endpoint_failed`), so a bulk
//! replay after re-enabling loses nothing.

use super::{Deliver, DeliverPayload};
use crate::access::principal::Tenant;
use crate::clock::now_ms;
use crate::dead_letters::DeadLetterReason;
use crate::dead_letters::store::{Failure, open_for_delivery};
use crate::events::{Event, FanOut, matches};
use crate::ids::{DeliveryId, EndpointId};
use crate::jobs::queue::{NewJob, enqueue_many};
use crate::store::{Arg, DbResult, JsonText, Prefetched, Q, Table, Tx};
use crate::webhooks::EndpointStatus;

/// The tenant's endpoints that events may fan out to, asked for ahead of need.
#[must_use]
pub struct Subscribers {
    endpoints: Prefetched,
}

/// An endpoint as the fan-out reads it.
#[derive(sqlx::FromRow)]
struct Subscriber {
    id: EndpointId,
    events: JsonText<Vec<String>>,
    status: EndpointStatus,
}

/// Asks for the tenant's `events` endpoints (see [`Tx::prefetch`]): asked for before the
/// transaction's first statement, the read travels with it instead of costing the writer a
/// round trip of its own.
pub async fn subscribers(tx: &mut Tx, tenant: &Tenant) -> DbResult<Subscribers> {
    let q = Q::read(
        "SELECT id, events, status FROM webhook_endpoints
         WHERE org_id = $1 AND environment = $2 AND kind = 'events' AND status <> 'disabled' AND deleted_at IS NULL",
    )
    .bind(tenant.org())
    .bind(tenant.env());
    Ok(Subscribers {
        endpoints: tx.prefetch(q).await?,
    })
}

impl FanOut for Subscribers {
    /// Queues the deliveries of `events` to every subscribed `events` endpoint of the tenant.
    async fn fan_out(self, tx: &mut Tx, tenant: &Tenant, events: &[Event]) -> DbResult<()> {
        let endpoints = tx.prefetched(self.endpoints).await?;
        let mut live = Vec::new();
        let mut failed = Vec::new();
        for row in &endpoints {
            let ep: Subscriber = row.decode()?;
            for event in events {
                if ep.events.0.iter().any(|p| matches(p, event.event_type)) {
                    if ep.status == EndpointStatus::Failed {
                        failed.push((ep.id.clone(), event));
                    } else {
                        live.push((ep.id.clone(), event));
                    }
                }
            }
        }
        create_deliveries(tx, tenant, &live, false).await?;
        create_deliveries(tx, tenant, &failed, true).await?;
        Ok(())
    }
}

/// Creates one delivery of `event` to an endpoint: queued, or (for a failed endpoint) straight
/// to the dead-letter queue. Returns its id.
pub async fn create_delivery(
    tx: &mut Tx,
    tenant: &Tenant,
    endpoint_id: &EndpointId,
    event: &Event,
    endpoint_failed: bool,
) -> DbResult<DeliveryId> {
    let mut ids =
        create_deliveries(tx, tenant, &[(endpoint_id.clone(), event)], endpoint_failed).await?;
    ids.pop().ok_or(crate::store::DbError::NotFound)
}

/// Creates deliveries (and their jobs, or dead letters) in a constant number of statements.
pub async fn create_deliveries(
    tx: &mut Tx,
    tenant: &Tenant,
    targets: &[(EndpointId, &Event)],
    endpoint_failed: bool,
) -> DbResult<Vec<DeliveryId>> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let ids: Vec<DeliveryId> = targets.iter().map(|_| DeliveryId::new()).collect();
    let status = if endpoint_failed {
        super::DeliveryStatus::Dead
    } else {
        super::DeliveryStatus::Pending
    };
    let rows = targets
        .iter()
        .zip(&ids)
        .map(|((endpoint_id, event), id)| {
            vec![
                Arg::from(id),
                Arg::from(tenant.org()),
                Arg::from(tenant.env()),
                Arg::from(endpoint_id),
                Arg::from(&event.id),
                Arg::from(event.event_type),
                Arg::from(status),
                Arg::from((!endpoint_failed).then_some(now)),
                Arg::from(now),
                Arg::from(now),
            ]
        })
        .collect();
    tx.defer_insert_many(
        Table::DELIVERIES,
        "INSERT INTO deliveries (id, org_id, environment, endpoint_id, event_id, event_type, status, next_attempt_at, created_at, updated_at)",
        "",
        rows,
    )
    .await?;
    if endpoint_failed {
        let failure = Failure {
            reason: DeadLetterReason::EndpointFailed,
            attempts: 0,
            last_error: None,
        };
        for ((endpoint_id, event), id) in targets.iter().zip(&ids) {
            open_for_delivery(tx, tenant, (id, endpoint_id), event, &failure).await?;
        }
    } else {
        let jobs = ids
            .iter()
            .map(|id| {
                let payload = DeliverPayload {
                    delivery_id: id.clone(),
                };
                NewJob::of::<Deliver>(Some(tenant.org()), &payload)
            })
            .collect::<DbResult<Vec<_>>>()?;
        enqueue_many(tx, jobs).await?;
    }
    Ok(ids)
}
