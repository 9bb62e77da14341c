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

/// A replayed delivery went through: the dead letter is resolved.
pub async fn resolve(tx: &mut Tx, id: &str) -> DbResult<()> {
    let now = now_ms();
    sql("UPDATE dead_letters SET status = 'resolved', resolved_at = $2, updated_at = $2 WHERE id = $1 AND status <> 'resolved'")
        .bind(id)
        .bind(now)
        .execute(tx)
        .await?;
    Ok(())
}

/// A replay failed again: the dead letter is open once more, with the new outcome.
pub async fn reopen(
    tx: &mut Tx,
    id: &str,
    reason: &str,
    attempts: i64,
    last_error: Option<&str>,
) -> DbResult<()> {
    sql("UPDATE dead_letters SET status = 'open', reason = $2, attempts = $3, last_error = $4, updated_at = $5 WHERE id = $1")
        .bind(id)
        .bind(reason)
        .bind(attempts)
        .bind(last_error.map(str::to_owned))
        .bind(now_ms())
        .execute(tx)
        .await?;
    Ok(())
}

/// A dead letter as the API shows it.
#[derive(Debug, Clone)]
pub struct DeadLetter {
    pub id: String,
    pub environment: String,
    pub source: String,
    pub delivery_id: Option<String>,
    pub endpoint_id: Option<String>,
    pub event_id: Option<String>,
    pub event_type: String,
    pub payload: serde_json::Value,
    pub reason: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub replay_count: i64,
    pub created_at: i64,
    pub updated_at: i64,
    pub resolved_at: Option<i64>,
}

pub const COLUMNS: &str = "id, environment, source, delivery_id, endpoint_id, event_id, event_type, payload, reason, status, attempts, last_error, replay_count, created_at, updated_at, resolved_at";

impl DeadLetter {
    pub fn from_row(r: &crate::store::Row) -> DbResult<DeadLetter> {
        Ok(DeadLetter {
            id: r.get("id")?,
            environment: r.get("environment")?,
            source: r.get("source")?,
            delivery_id: r.get("delivery_id")?,
            endpoint_id: r.get("endpoint_id")?,
            event_id: r.get("event_id")?,
            event_type: r.get("event_type")?,
            payload: r.json("payload")?,
            reason: r.get("reason")?,
            status: r.get("status")?,
            attempts: r.get("attempts")?,
            last_error: r.get("last_error")?,
            replay_count: r.get("replay_count")?,
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
            resolved_at: r.get("resolved_at")?,
        })
    }
}

/// Which dead letters a list or a bulk replay covers.
#[derive(Debug, Default, Clone)]
pub struct Filter {
    pub status: Option<String>,
    pub endpoint_id: Option<String>,
    pub event_type: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
}

pub async fn list(
    ex: &mut impl crate::store::Exec,
    t: &Tenant,
    f: &Filter,
    after: Option<String>,
    limit: i64,
) -> DbResult<Vec<DeadLetter>> {
    let rows = crate::store::sql_built(format!(
        "SELECT {COLUMNS} FROM dead_letters WHERE org_id = $1 AND environment = $2
           AND ($3 IS NULL OR status = $3) AND ($4 IS NULL OR endpoint_id = $4) AND ($5 IS NULL OR event_type = $5)
           AND ($6 IS NULL OR created_at >= $6) AND ($7 IS NULL OR created_at < $7) AND ($8 IS NULL OR id < $8)
         ORDER BY id DESC LIMIT $9"
    ))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(f.status.clone())
    .bind(f.endpoint_id.clone())
    .bind(f.event_type.clone())
    .bind(f.since_ms)
    .bind(f.until_ms)
    .bind(after)
    .bind(limit)
    .fetch_all(ex)
    .await?;
    rows.iter().map(DeadLetter::from_row).collect()
}

pub async fn get(
    ex: &mut impl crate::store::Exec,
    t: &Tenant,
    id: &str,
) -> DbResult<Option<DeadLetter>> {
    let row = crate::store::sql_built(format!(
        "SELECT {COLUMNS} FROM dead_letters WHERE org_id = $1 AND environment = $2 AND id = $3"
    ))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(id)
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(DeadLetter::from_row).transpose()
}

/// Why a dead letter cannot be replayed now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayRefusal {
    NotOpen(String),
    EndpointUnavailable(String),
    Unsupported,
}

/// Replays one open dead letter inside `tx`: a new delivery (or, for scheduled messages, a new
/// dispatch) linked to it; the dead letter is `replaying` until that succeeds or dies.
pub async fn replay(
    tx: &mut Tx,
    t: &Tenant,
    dl: &DeadLetter,
) -> DbResult<Result<String, ReplayRefusal>> {
    if dl.status != "open" {
        return Ok(Err(ReplayRefusal::NotOpen(dl.status.clone())));
    }
    let new_work = match dl.source.as_str() {
        "webhook_delivery" => {
            let (Some(endpoint_id), Some(event_id)) = (&dl.endpoint_id, &dl.event_id) else {
                return Ok(Err(ReplayRefusal::Unsupported));
            };
            let ep = super::endpoints::get(tx, t, endpoint_id).await?;
            match ep.map(|e| e.status) {
                Some(s) if s == "active" || s == "paused" => {}
                Some(s) => return Ok(Err(ReplayRefusal::EndpointUnavailable(s))),
                None => return Ok(Err(ReplayRefusal::EndpointUnavailable("deleted".into()))),
            }
            let event = crate::events::Event {
                id: event_id.clone(),
                event_type: dl.event_type.clone(),
                payload: dl.payload.clone(),
            };
            let delivery =
                super::fanout::create_delivery(tx, t, endpoint_id, &event, false).await?;
            sql("UPDATE deliveries SET dead_letter_id = $2 WHERE id = $1")
                .bind(&delivery)
                .bind(&dl.id)
                .execute(tx)
                .await?;
            crate::messages::on_replay(tx, t, dl.delivery_id.as_deref(), &delivery).await?;
            delivery
        }
        "scheduled_message" => match crate::scheduled::replay_dead_letter(tx, t, dl).await? {
            Some(job) => job,
            None => return Ok(Err(ReplayRefusal::Unsupported)),
        },
        _ => return Ok(Err(ReplayRefusal::Unsupported)),
    };
    sql("UPDATE dead_letters SET status = 'replaying', replay_count = replay_count + 1, updated_at = $2 WHERE id = $1")
        .bind(&dl.id)
        .bind(now_ms())
        .execute(tx)
        .await?;
    Ok(Ok(new_work))
}
