//! The SQL of data-subject rights: finding what mentions a contact, and redacting it.

use serde_json::{Value, json};

use crate::access::principal::Tenant;
use crate::clock::now_ms;
use crate::ids::{ContactId, EventId};
use crate::store::{DbResult, Exec, JsonText, Q, Tx};

/// The ids whose appearance in a payload ties it to the subject: the contact's, its
/// conversations', their messages' and scheduled messages'.
pub async fn subject_ids(
    ex: &mut impl Exec,
    t: &Tenant,
    contact: &ContactId,
) -> DbResult<Vec<String>> {
    let convs = crate::conversations::store::of_contact(ex, t, contact).await?;
    let mut ids = vec![contact.to_string()];
    for c in &convs {
        ids.push(c.to_string());
        let msgs: Vec<String> =
            Q::read("SELECT id FROM messages WHERE org_id = $1 AND conversation_id = $2")
                .bind(t.org())
                .bind(c)
                .fetch_column(ex)
                .await?;
        ids.extend(msgs);
        let scheduled: Vec<String> =
            Q::read("SELECT id FROM scheduled_messages WHERE org_id = $1 AND conversation_id = $2")
                .bind(t.org())
                .bind(c)
                .fetch_column(ex)
                .await?;
        ids.extend(scheduled);
    }
    Ok(ids)
}

/// Events (id, payload) of the tenant mentioning any of `ids` (ids are unique random strings,
/// so a substring match is exact enough).
pub async fn events_mentioning(
    ex: &mut impl Exec,
    t: &Tenant,
    ids: &[String],
) -> DbResult<Vec<(EventId, Value)>> {
    let mut out: Vec<(EventId, Value)> = Vec::new();
    for id in ids {
        let rows: Vec<(EventId, JsonText<Value>)> = Q::read(
            "SELECT id, payload FROM events WHERE org_id = $1 AND environment = $2 AND payload LIKE $3",
        )
        .bind(t.org())
        .bind(t.env())
        .bind(format!("%\"{id}\"%"))
        .fetch_all(ex)
        .await?;
        for (eid, payload) in rows {
            if !out.iter().any(|(e, _)| *e == eid) {
                out.push((eid, payload.into_inner()));
            }
        }
    }
    Ok(out)
}

/// A payload with its data replaced by a marker: the shape stays, the content goes.
fn redacted(payload: &Value, id: &EventId) -> Value {
    json!({ "type": payload["type"], "timestamp": payload["timestamp"], "data": { "erased": true, "event_id": id } })
}

/// Redacts an event and every copy of it (dead letters, sandbox records, response excerpts);
/// returns how many dead letters it redacted.
pub async fn redact_event(tx: &mut Tx, id: &EventId, payload: &Value) -> DbResult<u64> {
    let clean = redacted(payload, id);
    Q::write("UPDATE events SET payload = $2 WHERE id = $1")
        .bind(id)
        .bind(&clean)
        .execute(tx)
        .await?;
    let dead_letters =
        Q::write("UPDATE dead_letters SET payload = $2, updated_at = $3 WHERE event_id = $1")
            .bind(id)
            .bind(&clean)
            .bind(now_ms())
            .execute(tx)
            .await?;
    Q::write("UPDATE sandbox_deliveries SET payload = $2 WHERE event_id = $1")
        .bind(id)
        .bind(&clean)
        .execute(tx)
        .await?;
    Q::write("UPDATE delivery_attempts SET response_excerpt = NULL WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = $1)")
        .bind(id)
        .execute(tx)
        .await?;
    Ok(dead_letters)
}

/// Redacts the dead letters of scheduled messages that mention `id`; returns how many.
pub async fn redact_scheduled_dead_letters(tx: &mut Tx, t: &Tenant, id: &str) -> DbResult<u64> {
    Q::write("UPDATE dead_letters SET payload = $3, updated_at = $4 WHERE org_id = $1 AND source = 'scheduled_message' AND payload LIKE $2")
        .bind(t.org())
        .bind(format!("%\"{id}\"%"))
        .bind(&json!({ "erased": true }))
        .bind(now_ms())
        .execute(tx)
        .await
}
