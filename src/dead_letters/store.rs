//! Dead letters' SQL: opening one (from a delivery or a scheduled message), resolving and
//! reopening it, and reading them. Replays are in [`super::replay`].

use serde_json::Value;

use super::{DeadLetter, DeadLetterReason, DeadLetterSource, Filter};
use crate::access::principal::Tenant;
use crate::clock::now_ms;
use crate::events::{Event, EventType};
use crate::ids::{DeadLetterId, DeliveryId, EndpointId};
use crate::store::{DbResult, Exec, Q, Tx};

macro_rules! columns {
    () => {
        "id, environment, source, delivery_id, endpoint_id, event_id, event_type, payload, reason, status, attempts, last_error, replay_count, created_at, updated_at, resolved_at"
    };
}

/// What failed, for a new dead letter.
pub struct Failure<'a> {
    pub reason: DeadLetterReason,
    pub attempts: i64,
    pub last_error: Option<&'a str>,
}

/// Opens a dead letter for a webhook delivery.
pub async fn open_for_delivery(
    tx: &mut Tx,
    tenant: &Tenant,
    delivery: (&DeliveryId, &EndpointId),
    event: &Event,
    f: &Failure<'_>,
) -> DbResult<DeadLetterId> {
    let id = DeadLetterId::new();
    Q::write("INSERT INTO dead_letters (id, org_id, environment, source, delivery_id, endpoint_id, event_id, event_type, payload, reason, status, attempts, last_error, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'open', $11, $12, $13, $13)")
        .bind(&id)
        .bind(tenant.org())
        .bind(tenant.env())
        .bind(DeadLetterSource::WebhookDelivery)
        .bind(delivery.0)
        .bind(delivery.1)
        .bind(&event.id)
        .bind(event.event_type)
        .bind(&event.payload)
        .bind(f.reason)
        .bind(f.attempts)
        .bind(f.last_error)
        .bind(now_ms())
        .execute(tx)
        .await?;
    counted(f.reason);
    Ok(id)
}

/// Opens a dead letter for a scheduled message that could not be dispatched; `payload` is what
/// a replay needs to dispatch it again.
pub async fn open_for_scheduled(
    tx: &mut Tx,
    tenant: &Tenant,
    payload: &Value,
    f: &Failure<'_>,
) -> DbResult<DeadLetterId> {
    let id = DeadLetterId::new();
    Q::write("INSERT INTO dead_letters (id, org_id, environment, source, event_type, payload, reason, status, attempts, last_error, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'open', $8, $9, $10, $10)")
        .bind(&id)
        .bind(tenant.org())
        .bind(tenant.env())
        .bind(DeadLetterSource::ScheduledMessage)
        .bind(EventType::ScheduledMessageFailed)
        .bind(payload)
        .bind(f.reason)
        .bind(f.attempts)
        .bind(f.last_error)
        .bind(now_ms())
        .execute(tx)
        .await?;
    counted(f.reason);
    Ok(id)
}

fn counted(reason: DeadLetterReason) {
    metrics::counter!("rampart_dead_letters_total", "reason" => reason.as_str()).increment(1);
}

/// A replay went through: the dead letter is resolved.
pub async fn resolve(tx: &mut Tx, id: &DeadLetterId) -> DbResult<()> {
    let now = now_ms();
    Q::write("UPDATE dead_letters SET status = 'resolved', resolved_at = $2, updated_at = $2 WHERE id = $1 AND status <> 'resolved'")
        .bind(id)
        .bind(now)
        .execute(tx)
        .await?;
    Ok(())
}

/// A replay failed again: the dead letter is open once more, with the new outcome.
pub async fn reopen(tx: &mut Tx, id: &DeadLetterId, f: &Failure<'_>) -> DbResult<()> {
    Q::write("UPDATE dead_letters SET status = 'open', reason = $2, attempts = $3, last_error = $4, updated_at = $5 WHERE id = $1")
        .bind(id)
        .bind(f.reason)
        .bind(f.attempts)
        .bind(f.last_error)
        .bind(now_ms())
        .execute(tx)
        .await?;
    Ok(())
}

/// A replay is under way.
pub async fn mark_replaying(tx: &mut Tx, id: &DeadLetterId) -> DbResult<()> {
    Q::write("UPDATE dead_letters SET status = 'replaying', replay_count = replay_count + 1, updated_at = $2 WHERE id = $1")
        .bind(id)
        .bind(now_ms())
        .execute(tx)
        .await?;
    Ok(())
}

/// The tenant's dead letters matching `f`, newest first, below the cursor `after`.
pub async fn list(
    ex: &mut impl Exec,
    t: &Tenant,
    f: &Filter,
    after: Option<&str>,
    limit: i64,
) -> DbResult<Vec<DeadLetter>> {
    Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM dead_letters WHERE org_id = $1 AND environment = $2
           AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR endpoint_id = $4) AND ($5 IS NULL OR event_type = $5)
           AND ($6 IS NULL OR created_at >= $6) AND ($7 IS NULL OR created_at < $7) AND ($8 IS NULL OR id < $8)
         ORDER BY id DESC LIMIT $9"
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(f.status)
    .bind(f.endpoint_id.as_ref())
    .bind(f.event_type)
    .bind(f.since_ms)
    .bind(f.until_ms)
    .bind(after)
    .bind(limit)
    .fetch_all(ex)
    .await
}

pub async fn get(
    ex: &mut impl Exec,
    t: &Tenant,
    id: &DeadLetterId,
) -> DbResult<Option<DeadLetter>> {
    Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM dead_letters WHERE org_id = $1 AND environment = $2 AND id = $3"
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(id)
    .fetch_optional(ex)
    .await
}

/// Every dead letter of the tenant, oldest first (exports).
pub async fn all(ex: &mut impl Exec, t: &Tenant) -> DbResult<Vec<DeadLetter>> {
    Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM dead_letters WHERE org_id = $1 AND environment = $2 ORDER BY id"
    ))
    .bind(t.org())
    .bind(t.env())
    .fetch_all(ex)
    .await
}
