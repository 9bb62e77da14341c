//! Dead letters: work whose retry budget is spent (or that could not even be attempted),
//! kept with its payload until it is replayed successfully.

use crate::access::principal::Tenant;
use crate::clock::now_ms;
use crate::events::Event;
use crate::ids::new_id;
use crate::store::{DbResult, Tx, sql};

/// Opens a dead letter for a webhook delivery.
#[allow(clippy::too_many_arguments)]
pub async fn open_for_delivery(
    tx: &mut Tx,
    tenant: &Tenant,
    delivery_id: &str,
    endpoint_id: &str,
    event: &Event,
    reason: &str,
    attempts: i64,
    last_error: Option<&str>,
) -> DbResult<String> {
    let id = new_id("dl");
    let now = now_ms();
    sql("INSERT INTO dead_letters (id, org_id, environment, source, delivery_id, endpoint_id, event_id, event_type, payload, reason, status, attempts, last_error, created_at, updated_at)
         VALUES ($1, $2, $3, 'webhook_delivery', $4, $5, $6, $7, $8, $9, 'open', $10, $11, $12, $12)")
        .bind(&id)
        .bind(tenant.org())
        .bind(tenant.env().as_str())
        .bind(delivery_id)
        .bind(endpoint_id)
        .bind(&event.id)
        .bind(&event.event_type)
        .bind(event.payload.to_string())
        .bind(reason)
        .bind(attempts)
        .bind(last_error.map(str::to_owned))
        .bind(now)
        .execute(tx)
        .await?;
    metrics::counter!("rampart_dead_letters_total", "reason" => reason.to_owned()).increment(1);
    Ok(id)
}
