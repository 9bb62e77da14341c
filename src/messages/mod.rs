//! Messages: outbound ones travel as a signed delivery to the org's channel endpoint (2xx →
//! `sent`, retry budget spent → `failed` with a dead letter); inbound ones are reported by the
//! channel. Every change emits its event in the same transaction.

pub mod routes;

use serde_json::{Map, Value, json};

use crate::access::principal::Tenant;
use crate::clock::now_ms;
use crate::http::ApiError;
use crate::http::pagination::PageParams;
use crate::ids::new_id;
use crate::store::{DbResult, Exec, Row, Tx, sql};
use crate::webhooks::endpoints;

#[derive(Debug, Clone)]
pub struct Message {
    pub id: String,
    pub conversation_id: String,
    pub direction: String,
    pub body: Option<String>,
    pub metadata: Value,
    pub status: String,
    pub delivery_id: Option<String>,
    pub scheduled_message_id: Option<String>,
    pub error: Option<String>,
    pub livemode: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub sent_at: Option<i64>,
}

pub const COLUMNS: &str = "id, conversation_id, direction, body, metadata, status, delivery_id, scheduled_message_id, error, environment, created_at, updated_at, sent_at";

impl Message {
    pub fn from_row(r: &Row) -> DbResult<Message> {
        Ok(Message {
            id: r.get("id")?,
            conversation_id: r.get("conversation_id")?,
            direction: r.get("direction")?,
            body: r.get("body")?,
            metadata: r.json("metadata")?,
            status: r.get("status")?,
            delivery_id: r.get("delivery_id")?,
            scheduled_message_id: r.get("scheduled_message_id")?,
            error: r.get("error")?,
            livemode: r.get::<String>("environment")? == "live",
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
            sent_at: r.get("sent_at")?,
        })
    }

    /// The event payload (`data`) of this message.
    pub fn event_data(&self) -> Value {
        json!({
            "id": self.id,
            "conversation_id": self.conversation_id,
            "direction": self.direction,
            "body": self.body,
            "metadata": self.metadata,
            "status": self.status,
            "scheduled_message_id": self.scheduled_message_id,
            "livemode": self.livemode,
        })
    }
}

pub async fn get(ex: &mut impl Exec, t: &Tenant, id: &str) -> DbResult<Option<Message>> {
    let row = crate::store::sql_built(format!(
        "SELECT {COLUMNS} FROM messages WHERE org_id = $1 AND environment = $2 AND id = $3"
    ))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(id)
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(Message::from_row).transpose()
}

pub async fn list(
    ex: &mut impl Exec,
    t: &Tenant,
    page: &PageParams,
    conversation: Option<&str>,
) -> DbResult<Vec<Message>> {
    let rows = crate::store::sql_built(format!(
        "SELECT {COLUMNS} FROM messages WHERE org_id = $1 AND environment = $2
           AND ($3 IS NULL OR id < $3) AND ($4 IS NULL OR conversation_id = $4)
         ORDER BY id DESC LIMIT $5"
    ))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(page.after.clone())
    .bind(conversation.map(str::to_owned))
    .bind(page.limit + 1)
    .fetch_all(ex)
    .await?;
    rows.iter().map(Message::from_row).collect()
}

/// Why an outbound message cannot be queued.
#[derive(Debug)]
pub enum SendRefusal {
    NoChannel,
}

impl SendRefusal {
    pub fn into_api_error(self) -> ApiError {
        match self {
            SendRefusal::NoChannel => ApiError::Rule {
                code: "channel_not_configured",
                field: "conversation_id",
                detail: "the org has no channel endpoint: create a webhook endpoint with kind \"channel\" first".into(),
            },
        }
    }
}

/// Queues an outbound message on `conversation_id` (which the caller checked belongs to the
/// tenant): the message row, its `message.created` event, and the delivery to the channel.
pub async fn create_outbound(
    tx: &mut Tx,
    t: &Tenant,
    conversation_id: &str,
    body: &str,
    metadata: &Map<String, Value>,
    scheduled_message_id: Option<&str>,
) -> DbResult<Result<Message, SendRefusal>> {
    // Asked for now, the subscribers travel with the channel's lookup (see `events::emit_to`).
    let subscribers = crate::events::subscribers(tx, t).await?;
    let Some(channel) = endpoints::channel(tx, t).await? else {
        return Ok(Err(SendRefusal::NoChannel));
    };
    let id = match scheduled_message_id {
        // One message per scheduled message, whatever happens: the id says which.
        Some(s) => format!("msg_{}", s.trim_start_matches("sch_")),
        None => new_id("msg"),
    };
    let now = now_ms();
    let row = crate::store::sql_built(format!(
        "INSERT INTO messages (id, org_id, environment, conversation_id, direction, body, metadata, status, scheduled_message_id, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'outbound', $5, $6, 'queued', $7, $8, $8) RETURNING {COLUMNS}"
    ))
    .bind(&id)
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(conversation_id)
    .bind(body)
    .bind(Value::Object(metadata.clone()).to_string())
    .bind(scheduled_message_id.map(str::to_owned))
    .bind(now)
    .fetch_one(tx)
    .await?;
    let mut msg = Message::from_row(&row)?;
    let event =
        crate::events::emit_to(tx, t, subscribers, "message.created", msg.event_data()).await?;
    let dead = matches!(channel.status.as_str(), "failed" | "disabled");
    let delivery =
        crate::webhooks::fanout::create_delivery(tx, t, &channel.id, &event, dead).await?;
    tx.defer(
        sql("UPDATE messages SET delivery_id = $2 WHERE id = $1")
            .bind(&id)
            .bind(&delivery),
    )
    .await?;
    msg.delivery_id = Some(delivery.clone());
    if dead {
        mark(
            tx,
            t,
            &[&delivery],
            false,
            Some("the channel endpoint is not active"),
        )
        .await?;
        msg.status = "failed".into();
    }
    Ok(Ok(msg))
}

/// Settles the messages carried by `deliveries`, if any: `sent` or `failed`, each with its
/// event.
async fn mark(
    tx: &mut Tx,
    t: &Tenant,
    deliveries: &[&str],
    ok: bool,
    error: Option<&str>,
) -> DbResult<()> {
    if deliveries.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let mut q = crate::store::sql_built(format!(
        "UPDATE messages SET status = $1, sent_at = CASE WHEN $2 THEN $3 ELSE sent_at END, error = $4, updated_at = $3
         WHERE org_id = $5 AND delivery_id IN ({}) AND status = 'queued' RETURNING {COLUMNS}",
        crate::store::placeholders(6, deliveries.len())
    ))
    .bind(if ok { "sent" } else { "failed" })
    .bind(ok)
    .bind(now)
    .bind(error.map(str::to_owned))
    .bind(t.org());
    for d in deliveries {
        q = q.bind(*d);
    }
    let rows = q.fetch_all(tx).await?;
    if rows.is_empty() {
        return Ok(());
    }
    let kind = if ok { "message.sent" } else { "message.failed" };
    let events = rows
        .iter()
        .map(|r| Ok((kind, Message::from_row(r)?.event_data())))
        .collect::<DbResult<Vec<_>>>()?;
    metrics::counter!("rampart_messages_total", "status" => if ok { "sent" } else { "failed" })
        .increment(events.len() as u64);
    crate::events::emit_many(tx, t, events).await?;
    Ok(())
}

/// Called when a delivery settles (delivered, or dead).
pub async fn on_delivery_settled(
    tx: &mut Tx,
    t: &Tenant,
    delivery_id: &str,
    ok: bool,
) -> DbResult<()> {
    let error = (!ok).then_some("the channel did not accept the message within its retry budget");
    mark(tx, t, &[delivery_id], ok, error).await
}

/// Called when deliveries of one tenant were delivered (recorded in a batch).
pub async fn on_deliveries_sent(tx: &mut Tx, t: &Tenant, deliveries: &[&str]) -> DbResult<()> {
    mark(tx, t, deliveries, true, None).await
}

/// A dead letter of a message's delivery is replayed: the message is queued again on the new
/// delivery.
pub async fn on_replay(
    tx: &mut Tx,
    t: &Tenant,
    old_delivery: Option<&str>,
    new_delivery: &str,
) -> DbResult<()> {
    if let Some(old) = old_delivery {
        sql(
            "UPDATE messages SET delivery_id = $4, status = 'queued', error = NULL, updated_at = $5
             WHERE org_id = $1 AND environment = $2 AND delivery_id = $3",
        )
        .bind(t.org())
        .bind(t.env().as_str())
        .bind(old)
        .bind(new_delivery)
        .bind(now_ms())
        .execute(tx)
        .await?;
    }
    Ok(())
}

/// Erases the content of every message of a contact (GDPR); returns how many.
pub async fn erase_for_contact(tx: &mut Tx, t: &Tenant, contact_id: &str) -> DbResult<u64> {
    let now = now_ms();
    let n = sql(
        "UPDATE messages SET body = NULL, metadata = '{}', erased_at = $4, updated_at = $4
                 WHERE org_id = $1 AND environment = $2 AND erased_at IS NULL
                   AND conversation_id IN (SELECT id FROM conversations WHERE contact_id = $3)",
    )
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(contact_id)
    .bind(now)
    .execute(tx)
    .await?;
    sql("UPDATE scheduled_messages SET body = NULL, metadata = '{}', status = CASE WHEN status = 'pending' THEN 'canceled' ELSE status END, updated_at = $4
         WHERE org_id = $1 AND environment = $2
           AND conversation_id IN (SELECT id FROM conversations WHERE contact_id = $3)")
        .bind(t.org())
        .bind(t.env().as_str())
        .bind(contact_id)
        .bind(now)
        .execute(tx)
        .await?;
    Ok(n)
}
