//! Messages' SQL.

use serde_json::{Map, Value};

use super::{Message, MessageStatus};
use crate::access::principal::Tenant;
use crate::clock::now_ms;
use crate::http::search::Search;
use crate::ids::{ContactId, ConversationId, DeliveryId, MessageId, ScheduledMessageId};
use crate::store::{Arg, DbResult, Exec, Q, Table, Tx};

macro_rules! columns {
    () => {
        "id, conversation_id, direction, body, metadata, status, delivery_id, scheduled_message_id, error, environment, created_at, updated_at, sent_at"
    };
}

pub async fn get(ex: &mut impl Exec, t: &Tenant, id: &MessageId) -> DbResult<Option<Message>> {
    Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM messages WHERE org_id = $1 AND environment = $2 AND id = $3"
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(id)
    .fetch_optional(ex)
    .await
}

/// A page of the tenant's messages, newest first (`limit + 1` rows at most).
pub async fn list(
    ex: &mut impl Exec,
    t: &Tenant,
    after: Option<&str>,
    limit: i64,
    conversation: Option<&ConversationId>,
    search: Option<&Search>,
) -> DbResult<Vec<Message>> {
    Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM messages WHERE org_id = $1 AND environment = $2
           AND ($3 IS NULL OR id < $3) AND ($4 IS NULL OR conversation_id = $4)
           AND ($6 IS NULL OR lower(body) LIKE lower($6) ESCAPE '\\')
         ORDER BY id DESC LIMIT $5"
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(after)
    .bind(conversation)
    .bind(limit + 1)
    .bind(search.map(Search::pattern))
    .fetch_all(ex)
    .await
}

/// A conversation's messages, oldest first (GDPR export).
pub async fn of_conversation(
    ex: &mut impl Exec,
    t: &Tenant,
    conversation: &ConversationId,
) -> DbResult<Vec<Message>> {
    Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM messages WHERE org_id = $1 AND environment = $2 AND conversation_id = $3 ORDER BY id"
    ))
    .bind(t.org())
    .bind(t.env())
    .bind(conversation)
    .fetch_all(ex)
    .await
}

pub async fn insert_outbound(
    tx: &mut Tx,
    t: &Tenant,
    id: &MessageId,
    conversation_id: &ConversationId,
    body: &str,
    metadata: &Map<String, Value>,
    scheduled: Option<&ScheduledMessageId>,
) -> DbResult<Message> {
    Q::write(concat!(
        "INSERT INTO messages (id, org_id, environment, conversation_id, direction, body, metadata, status, scheduled_message_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'outbound', $5, $6, 'queued', $7, $8, $8) RETURNING ",
        columns!()
    ))
    .bind(id)
    .bind(t.org())
    .bind(t.env())
    .bind(conversation_id)
    .bind(body)
    .bind(&Value::Object(metadata.clone()))
    .bind(scheduled)
    .bind(now_ms())
    .fetch_one(tx)
    .await
}

pub async fn insert_inbound(
    tx: &mut Tx,
    t: &Tenant,
    conversation_id: &ConversationId,
    body: &str,
    metadata: &Map<String, Value>,
) -> DbResult<Message> {
    Q::write(concat!(
        "INSERT INTO messages (id, org_id, environment, conversation_id, direction, body, metadata, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'inbound', $5, $6, 'received', $7, $7) RETURNING ",
        columns!()
    ))
    .bind(MessageId::new())
    .bind(t.org())
    .bind(t.env())
    .bind(conversation_id)
    .bind(body)
    .bind(&Value::Object(metadata.clone()))
    .bind(now_ms())
    .fetch_one(tx)
    .await
}

/// Links a message to the delivery that carries it (a deferred write).
pub async fn set_delivery(tx: &mut Tx, id: &MessageId, delivery: &DeliveryId) -> DbResult<()> {
    let q = Q::write("UPDATE messages SET delivery_id = $2 WHERE id = $1")
        .bind(id)
        .bind(delivery);
    tx.defer(Table::MESSAGES, q).await
}

/// Settles the queued messages carried by `deliveries` as `status`; returns them.
pub async fn settle(
    tx: &mut Tx,
    t: &Tenant,
    deliveries: &[&DeliveryId],
    status: MessageStatus,
    error: Option<&str>,
) -> DbResult<Vec<Message>> {
    let sent = status == MessageStatus::Sent;
    Q::write_per_dialect(
        concat!(
            "UPDATE messages SET status = $1, sent_at = CASE WHEN $2 THEN $3 ELSE sent_at END, error = $4, updated_at = $3
             WHERE org_id = $5 AND delivery_id IN (SELECT value FROM json_each($6)) AND status = 'queued' RETURNING ",
            columns!()
        ),
        concat!(
            "UPDATE messages SET status = $1, sent_at = CASE WHEN $2 THEN $3 ELSE sent_at END, error = $4, updated_at = $3
             WHERE org_id = $5 AND delivery_id = ANY($6) AND status = 'queued' RETURNING ",
            columns!()
        ),
    )
    .planned_per_call()
    .bind(status)
    .bind(sent)
    .bind(now_ms())
    .bind(error)
    .bind(t.org())
    .bind(deliveries.iter().map(ToString::to_string).collect::<Vec<_>>())
    .fetch_all(tx)
    .await
}

/// A dead letter of a message's delivery is replayed: the message is queued again on the new
/// delivery.
pub async fn on_replay(
    tx: &mut Tx,
    t: &Tenant,
    old_delivery: Option<&DeliveryId>,
    new_delivery: &DeliveryId,
) -> DbResult<()> {
    if let Some(old) = old_delivery {
        Q::write(
            "UPDATE messages SET delivery_id = $4, status = 'queued', error = NULL, updated_at = $5
             WHERE org_id = $1 AND environment = $2 AND delivery_id = $3",
        )
        .bind(t.org())
        .bind(t.env())
        .bind(old)
        .bind(new_delivery)
        .bind(now_ms())
        .execute(tx)
        .await?;
    }
    Ok(())
}

/// Erases the content of every message (and scheduled message) of a contact (GDPR); returns
/// how many messages.
pub async fn erase_for_contact(tx: &mut Tx, t: &Tenant, contact: &ContactId) -> DbResult<u64> {
    let now = now_ms();
    let n = Q::write(
        "UPDATE messages SET body = NULL, metadata = '{}', erased_at = $4, updated_at = $4
         WHERE org_id = $1 AND environment = $2 AND erased_at IS NULL
           AND conversation_id IN (SELECT id FROM conversations WHERE contact_id = $3)",
    )
    .bind(t.org())
    .bind(t.env())
    .bind(contact)
    .bind(now)
    .execute(tx)
    .await?;
    Q::write("UPDATE scheduled_messages SET body = NULL, metadata = '{}', status = CASE WHEN status = 'pending' THEN 'canceled' ELSE status END, updated_at = $4
         WHERE org_id = $1 AND environment = $2
           AND conversation_id IN (SELECT id FROM conversations WHERE contact_id = $3)")
        .bind(t.org())
        .bind(t.env())
        .bind(contact)
        .bind(now)
        .execute(tx)
        .await?;
    Ok(n)
}

/// An outbound message created by the scheduler's batch dispatch.
pub struct Dispatched<'a> {
    pub id: &'a MessageId,
    pub conversation_id: &'a ConversationId,
    pub body: Option<&'a str>,
    pub metadata: &'a Map<String, Value>,
    pub delivery: &'a DeliveryId,
    pub scheduled: &'a ScheduledMessageId,
}

/// Inserts the messages of a dispatched batch with multi-row inserts; each is `queued` on its
/// delivery, or `failed` if the channel was not active (`failed`).
pub async fn insert_dispatched(
    tx: &mut Tx,
    t: &Tenant,
    messages: &[Dispatched<'_>],
    failed: bool,
) -> DbResult<()> {
    let now = now_ms();
    let status = if failed {
        MessageStatus::Failed
    } else {
        MessageStatus::Queued
    };
    let rows = messages
        .iter()
        .map(|m| {
            vec![
                Arg::from(m.id),
                Arg::from(t.org()),
                Arg::from(t.env()),
                Arg::from(m.conversation_id),
                Arg::from(super::Direction::Outbound),
                Arg::from(m.body),
                Arg::from(&Value::Object(m.metadata.clone())),
                Arg::from(status),
                Arg::from(m.delivery),
                Arg::from(m.scheduled),
                Arg::from(now),
                Arg::from(now),
            ]
        })
        .collect();
    crate::store::insert_many(
        tx,
        "INSERT INTO messages (id, org_id, environment, conversation_id, direction, body, metadata, status, delivery_id, scheduled_message_id, created_at, updated_at)",
        "",
        rows,
    )
    .await?;
    Ok(())
}

/// Every message of the tenant, oldest first (exports).
pub async fn all(ex: &mut impl Exec, t: &Tenant) -> DbResult<Vec<Message>> {
    Q::read(concat!(
        "SELECT ",
        columns!(),
        " FROM messages WHERE org_id = $1 AND environment = $2 ORDER BY id"
    ))
    .bind(t.org())
    .bind(t.env())
    .fetch_all(ex)
    .await
}
