//! Turning events into deliveries: one per subscribed endpoint, each with its job, in the
//! events' own transaction. A `failed` endpoint receives nothing: its events become open dead
//! letters at once (`endpoint_failed`), so a bulk replay after re-enabling loses nothing.

use serde_json::json;

use crate::access::principal::Tenant;
use crate::clock::now_ms;
use crate::events::{Event, matches};
use crate::ids::new_id;
use crate::jobs::queue::{NewJob, enqueue_many};
use crate::store::{Arg, DbResult, Prefetched, Tx, insert_many_deferred, sql};

pub const DELIVER_JOB: &str = "webhook.deliver";

/// The tenant's endpoints that events may fan out to, asked for ahead of need.
#[must_use]
pub struct Subscribers(Prefetched);

/// Asks for the tenant's `events` endpoints (see [`Tx::prefetch`]): called before the
/// transaction's first statement, the read travels with it instead of costing the writer a
/// round trip of its own.
pub async fn subscribers(tx: &mut Tx, tenant: &Tenant) -> DbResult<Subscribers> {
    let q = sql(
        "SELECT id, events, status FROM webhook_endpoints
         WHERE org_id = $1 AND environment = $2 AND kind = 'events' AND status <> 'disabled' AND deleted_at IS NULL",
    )
    .bind(tenant.org())
    .bind(tenant.env().as_str());
    Ok(Subscribers(tx.prefetch(q).await?))
}

/// Queues the deliveries of `events` to every subscribed `events` endpoint of the tenant.
pub async fn fan_out_many(
    tx: &mut Tx,
    tenant: &Tenant,
    subscribers: Subscribers,
    events: &[Event],
) -> DbResult<()> {
    let endpoints = tx.prefetched(subscribers.0).await?;
    let mut live = Vec::new();
    let mut failed = Vec::new();
    for ep in endpoints {
        let patterns: Vec<String> =
            serde_json::from_str(&ep.get::<String>("events")?).unwrap_or_default();
        let id: String = ep.get("id")?;
        let is_failed = ep.get::<String>("status")? == "failed";
        for event in events {
            if patterns.iter().any(|p| matches(p, &event.event_type)) {
                if is_failed {
                    failed.push((id.clone(), event));
                } else {
                    live.push((id.clone(), event));
                }
            }
        }
    }
    create_deliveries(tx, tenant, &live, false).await?;
    create_deliveries(tx, tenant, &failed, true).await?;
    Ok(())
}

/// Creates one delivery of `event` to an endpoint: queued, or (for a failed endpoint) straight
/// to the dead-letter queue. Returns its id.
pub async fn create_delivery(
    tx: &mut Tx,
    tenant: &Tenant,
    endpoint_id: &str,
    event: &Event,
    endpoint_failed: bool,
) -> DbResult<String> {
    let mut ids = create_deliveries(
        tx,
        tenant,
        &[(endpoint_id.to_owned(), event)],
        endpoint_failed,
    )
    .await?;
    Ok(ids.remove(0))
}

/// Creates deliveries (and their jobs, or dead letters) in a constant number of statements.
pub async fn create_deliveries(
    tx: &mut Tx,
    tenant: &Tenant,
    targets: &[(String, &Event)],
    endpoint_failed: bool,
) -> DbResult<Vec<String>> {
    if targets.is_empty() {
        return Ok(Vec::new());
    }
    let now = now_ms();
    let ids: Vec<String> = targets.iter().map(|_| new_id("dlv")).collect();
    let rows = targets
        .iter()
        .zip(&ids)
        .map(|((endpoint_id, event), id)| {
            vec![
                Arg::from(id),
                Arg::from(tenant.org()),
                Arg::from(tenant.env().as_str()),
                Arg::from(endpoint_id),
                Arg::from(&event.id),
                Arg::from(&event.event_type),
                Arg::from(if endpoint_failed { "dead" } else { "pending" }),
                Arg::from((!endpoint_failed).then_some(now)),
                Arg::from(now),
                Arg::from(now),
            ]
        })
        .collect();
    insert_many_deferred(
        tx,
        "INSERT INTO deliveries (id, org_id, environment, endpoint_id, event_id, event_type, status, next_attempt_at, created_at, updated_at)",
        "",
        rows,
    )
    .await?;
    if endpoint_failed {
        for ((endpoint_id, event), id) in targets.iter().zip(&ids) {
            crate::webhooks::dead_letters::open_for_delivery(
                tx,
                tenant,
                id,
                endpoint_id,
                event,
                "endpoint_failed",
                0,
                None,
            )
            .await?;
        }
    } else {
        let jobs = ids
            .iter()
            .map(|id| {
                NewJob::now(
                    DELIVER_JOB,
                    Some(tenant.org().clone()),
                    json!({ "delivery_id": id }),
                )
            })
            .collect();
        enqueue_many(tx, jobs).await?;
    }
    Ok(ids)
}
