//! The sandbox sink's SQL.

use super::SandboxDelivery;
use crate::access::principal::Tenant;
use crate::clock::now_ms;
use crate::events::Event;
use crate::ids::{DeliveryId, EndpointId, SandboxDeliveryId};
use crate::store::{DbResult, Exec, Q, Tx};

/// Records what a test-mode delivery would have sent.
pub async fn record(
    tx: &mut Tx,
    t: &Tenant,
    target: (&EndpointId, &str),
    delivery: &DeliveryId,
    event: &Event,
    headers: &serde_json::Value,
    body: &str,
) -> DbResult<()> {
    Q::write("INSERT INTO sandbox_deliveries (id, org_id, endpoint_id, delivery_id, event_id, event_type, url, headers, payload, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
        .bind(SandboxDeliveryId::new())
        .bind(t.org())
        .bind(target.0)
        .bind(delivery)
        .bind(&event.id)
        .bind(event.event_type)
        .bind(target.1)
        .bind(headers)
        .bind(body)
        .bind(now_ms())
        .execute(tx)
        .await?;
    Ok(())
}

/// A page of the org's sandbox deliveries, newest first (`limit + 1` rows at most).
pub async fn list(
    ex: &mut impl Exec,
    t: &Tenant,
    after: Option<&str>,
    limit: i64,
) -> DbResult<Vec<SandboxDelivery>> {
    Q::read("SELECT id, endpoint_id, delivery_id, event_id, event_type, url, headers, payload, created_at FROM sandbox_deliveries
         WHERE org_id = $1 AND ($2 IS NULL OR id < $2) ORDER BY id DESC LIMIT $3")
        .bind(t.org())
        .bind(after)
        .bind(limit + 1)
        .fetch_all(ex)
        .await
}
