//! Scheduled messages' SQL, the scheduler's included.

use serde_json::{Map, Value};

use super::{ScheduledMessage, ScheduledStatus};
use crate::access::principal::{Environment, Tenant};
use crate::clock::now_ms;
use crate::dead_letters::DeadLetter;
use crate::http::search::Search;
use crate::ids::{ConversationId, DeadLetterId, OrgId, ScheduledMessageId};
use crate::store::{Db, DbResult, Exec, JsonText, Q, Tx};

macro_rules! columns {
    () => {
        "id, conversation_id, body, metadata, send_at, status, message_id, last_error, environment, created_at, updated_at, dispatched_at"
    };
}

pub async fn get(
    ex: &mut impl Exec,
    t: &Tenant,
    id: &ScheduledMessageId,
) -> DbResult<Option<ScheduledMessage>> {
    Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM scheduled_messages WHERE org_id = $1 AND environment = $2 AND id = $3"
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(id)
    .fetch_optional(ex)
    .await
}

/// A page of the tenant's scheduled messages, newest first (`limit + 1` rows at most).
pub async fn list(
    ex: &mut impl Exec,
    t: &Tenant,
    after: Option<&str>,
    limit: i64,
    status: Option<ScheduledStatus>,
    search: Option<&Search>,
) -> DbResult<Vec<ScheduledMessage>> {
    Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM scheduled_messages WHERE org_id = $1 AND environment = $2
           AND ($3 IS NULL OR id < $3) AND ($4 IS NULL OR status = $4)
           AND ($6 IS NULL OR lower(body) LIKE lower($6) ESCAPE '\\')
         ORDER BY id DESC LIMIT $5"
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(after)
    .bind(status)
    .bind(limit + 1)
    .bind(search.map(Search::pattern))
    .fetch_all(ex)
    .await
}

/// A conversation's scheduled messages, oldest first (GDPR export).
pub async fn of_conversation(
    ex: &mut impl Exec,
    t: &Tenant,
    conversation: &ConversationId,
) -> DbResult<Vec<ScheduledMessage>> {
    Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM scheduled_messages WHERE org_id = $1 AND environment = $2 AND conversation_id = $3 ORDER BY id"
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(conversation)
    .fetch_all(ex)
    .await
}

pub async fn insert(
    ex: &mut impl Exec,
    t: &Tenant,
    conversation_id: &ConversationId,
    body: &str,
    metadata: &Map<String, Value>,
    send_at: i64,
) -> DbResult<ScheduledMessage> {
    Q::write(concat!(
        "INSERT INTO scheduled_messages (id, org_id, environment, conversation_id, body, metadata, send_at, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8) RETURNING ",
        columns!()
    ))
    .bind(ScheduledMessageId::new())
    .bind(t.org())
    .bind(t.env())
    .bind(conversation_id)
    .bind(body)
    .bind(&Value::Object(metadata.clone()))
    .bind(send_at)
    .bind(now_ms())
    .fetch_one(ex)
    .await
}

/// Cancels a pending item. `false`: it is no longer pending (the dispatcher may have it).
pub async fn cancel(ex: &mut impl Exec, t: &Tenant, id: &ScheduledMessageId) -> DbResult<bool> {
    let n = Q::write("UPDATE scheduled_messages SET status = 'canceled', updated_at = $4 WHERE org_id = $1 AND environment = $2 AND id = $3 AND status = 'pending'")
        .bind(t.org())
        .bind(t.env())
        .bind(id)
        .bind(now_ms())
        .execute(ex)
        .await?;
    Ok(n == 1)
}

/// When the next pending item is due, if any.
pub async fn next_due(db: &Db) -> DbResult<Option<i64>> {
    Q::read("SELECT MIN(send_at) AS t FROM scheduled_messages WHERE status = 'pending'")
        .fetch_scalar(&mut db.clone())
        .await
}

/// An item as taken for dispatch, before the scheduler gives it its tenant.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Taken {
    pub id: ScheduledMessageId,
    pub org_id: OrgId,
    pub environment: Environment,
    pub conversation_id: ConversationId,
    pub body: Option<String>,
    pub metadata: JsonText<Map<String, Value>>,
    pub send_at: i64,
    pub dead_letter_id: Option<DeadLetterId>,
}

/// Takes up to `limit` due items for dispatch inside `tx`, earliest first: see [`take_ids`].
pub async fn take_due(tx: &mut Tx, limit: i64) -> DbResult<Vec<Taken>> {
    let q = Q::write_per_dialect(
        "UPDATE scheduled_messages SET status = 'dispatched', message_id = 'msg_' || substr(id, 5), dispatched_at = $1, updated_at = $1,
                lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
         WHERE id IN (SELECT id FROM scheduled_messages WHERE status = 'pending' AND send_at <= $1 ORDER BY send_at LIMIT $2)
         RETURNING id, org_id, environment, conversation_id, body, metadata, send_at, dead_letter_id",
        "UPDATE scheduled_messages SET status = 'dispatched', message_id = 'msg_' || substr(id, 5), dispatched_at = $1, updated_at = $1,
                lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
         WHERE id IN (SELECT id FROM scheduled_messages WHERE status = 'pending' AND send_at <= $1 ORDER BY send_at LIMIT $2 FOR UPDATE SKIP LOCKED)
         RETURNING id, org_id, environment, conversation_id, body, metadata, send_at, dead_letter_id",
    )
    .bind(now_ms())
    .bind(limit);
    sorted(q.fetch_all(tx).await?)
}

/// Takes these items for dispatch inside `tx`, if they are still pending: marks them
/// `dispatched` and returns them. The row locks this takes (Postgres `SKIP LOCKED`; SQLite's
/// single writer) hold until `tx` ends, so no other worker can take them; if `tx` rolls back
/// they are pending again, with nothing of them left behind. Claim and effect in one
/// transaction is what makes dispatch exactly once.
pub async fn take_ids(tx: &mut Tx, ids: &[ScheduledMessageId]) -> DbResult<Vec<Taken>> {
    let q = Q::write_per_dialect(
        "UPDATE scheduled_messages SET status = 'dispatched', message_id = 'msg_' || substr(id, 5), dispatched_at = $1, updated_at = $1,
                lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
         WHERE id IN (SELECT id FROM scheduled_messages WHERE status = 'pending' AND id IN (SELECT value FROM json_each($2)))
         RETURNING id, org_id, environment, conversation_id, body, metadata, send_at, dead_letter_id",
        "UPDATE scheduled_messages SET status = 'dispatched', message_id = 'msg_' || substr(id, 5), dispatched_at = $1, updated_at = $1,
                lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
         WHERE id IN (SELECT id FROM scheduled_messages WHERE status = 'pending' AND id = ANY($2) FOR UPDATE SKIP LOCKED)
         RETURNING id, org_id, environment, conversation_id, body, metadata, send_at, dead_letter_id",
    )
    .planned_per_call()
    .bind(now_ms())
    .bind(ids.iter().map(ToString::to_string).collect::<Vec<_>>());
    sorted(q.fetch_all(tx).await?)
}

/// RETURNING does not keep the subquery's order.
fn sorted(mut items: Vec<Taken>) -> DbResult<Vec<Taken>> {
    items.sort_by_key(|i| i.send_at);
    Ok(items)
}

/// Sets a taken item's outcome other than dispatched (taking it marked it dispatched; it was
/// not).
pub async fn set_status(
    tx: &mut Tx,
    id: &ScheduledMessageId,
    status: ScheduledStatus,
    dead_letter: Option<&DeadLetterId>,
    error: Option<&str>,
) -> DbResult<()> {
    Q::write("UPDATE scheduled_messages SET status = $2, last_error = $3, dead_letter_id = COALESCE($4, dead_letter_id), updated_at = $5,
            message_id = NULL, dispatched_at = NULL WHERE id = $1")
        .bind(id)
        .bind(status)
        .bind(error)
        .bind(dead_letter)
        .bind(now_ms())
        .execute(tx)
        .await?;
    Ok(())
}

/// Replays a scheduled message's dead letter: the item is pending again, due now.
pub async fn replay_dead_letter(
    tx: &mut Tx,
    t: &Tenant,
    dl: &DeadLetter,
) -> DbResult<Option<ScheduledMessageId>> {
    let Some(id) = dl.payload.0["scheduled_message_id"]
        .as_str()
        .and_then(ScheduledMessageId::parse)
    else {
        return Ok(None);
    };
    let n = Q::write("UPDATE scheduled_messages SET status = 'pending', send_at = $4, last_error = NULL, dead_letter_id = $5, updated_at = $4
                 WHERE org_id = $1 AND environment = $2 AND id = $3 AND status = 'failed'")
        .bind(t.org())
        .bind(t.env())
        .bind(&id)
        .bind(now_ms())
        .bind(&dl.id)
        .execute(tx)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    crate::jobs::queue::wake_scheduler_after_commit(tx);
    Ok(Some(id))
}

/// Every scheduled message of the tenant, oldest first (exports).
pub async fn all(ex: &mut impl Exec, t: &Tenant) -> DbResult<Vec<ScheduledMessage>> {
    Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM scheduled_messages WHERE org_id = $1 AND environment = $2 ORDER BY id"
    ))
    .bind(t.org())
    .bind(t.env())
    .fetch_all(ex)
    .await
}
