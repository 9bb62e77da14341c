//! Turning an event into deliveries: one per subscribed endpoint, each with its job, in the
//! event's own transaction. A `failed` endpoint receives nothing: its events become open dead
//! letters at once (`endpoint_failed`), so a bulk replay after re-enabling loses nothing.

use serde_json::json;

use crate::access::principal::Tenant;
use crate::clock::now_ms;
use crate::events::{Event, matches};
use crate::ids::new_id;
use crate::jobs::queue::{NewJob, enqueue};
use crate::store::{DbResult, Tx, sql};

pub const DELIVER_JOB: &str = "webhook.deliver";

pub async fn fan_out(tx: &mut Tx, tenant: &Tenant, event: &Event) -> DbResult<()> {
    let endpoints = sql("SELECT id, events, status FROM webhook_endpoints
         WHERE org_id = $1 AND environment = $2 AND kind = 'events' AND status <> 'disabled'")
    .bind(tenant.org())
    .bind(tenant.env().as_str())
    .fetch_all(tx)
    .await?;
    for ep in endpoints {
        let patterns: Vec<String> =
            serde_json::from_str(&ep.get::<String>("events")?).unwrap_or_default();
        if !patterns.iter().any(|p| matches(p, &event.event_type)) {
            continue;
        }
        let endpoint_id: String = ep.get("id")?;
        let status: String = ep.get("status")?;
        create_delivery(tx, tenant, &endpoint_id, event, status == "failed").await?;
    }
    Ok(())
}

/// Creates one delivery of `event` to an endpoint: queued, or (for a failed endpoint) straight
/// to the dead-letter queue.
pub async fn create_delivery(
    tx: &mut Tx,
    tenant: &Tenant,
    endpoint_id: &str,
    event: &Event,
    endpoint_failed: bool,
) -> DbResult<String> {
    let id = new_id("dlv");
    let now = now_ms();
    sql("INSERT INTO deliveries (id, org_id, environment, endpoint_id, event_id, event_type, status, next_attempt_at, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)")
        .bind(&id)
        .bind(tenant.org())
        .bind(tenant.env().as_str())
        .bind(endpoint_id)
        .bind(&event.id)
        .bind(&event.event_type)
        .bind(if endpoint_failed { "dead" } else { "pending" })
        .bind(if endpoint_failed { None } else { Some(now) })
        .bind(now)
        .execute(tx)
        .await?;
    if endpoint_failed {
        crate::webhooks::dead_letters::open_for_delivery(
            tx,
            tenant,
            &id,
            endpoint_id,
            event,
            "endpoint_failed",
            0,
            None,
        )
        .await?;
    } else {
        enqueue(
            tx,
            NewJob::now(
                DELIVER_JOB,
                Some(tenant.org().clone()),
                json!({ "delivery_id": id }),
            ),
        )
        .await?;
    }
    Ok(id)
}
