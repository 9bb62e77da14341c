//! Data-subject rights: export everything held about a contact, and erase it.
//!
//! Erasure keeps a tombstone (the contact's id, a hash of its external key, times) so that
//! audit entries and counts still resolve, and removes the personal data everywhere it was
//! copied: the contact row, message bodies and metadata, pending scheduled messages (canceled),
//! event payloads, dead-letter payloads, sandbox records and receivers' response excerpts.
//! Never billing-gated: rights do not lapse with a subscription.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::Response;
use serde::Serialize;
use serde_json::{Value, json};

use crate::access::grants::{Permission, Scope};
use crate::access::principal::{Principal, Tenant};
use crate::app::AppState;
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::now_ms;
use crate::contacts::routes::ContactOut;
use crate::http::routes::{Billing, Profile, Route};
use crate::http::{ApiError, ApiResult, Path};
use crate::store::{DbResult, Exec, Tx, sql, sql_built};
use crate::traffic::idempotency::Idem;

pub fn routes() -> Vec<Route> {
    vec![
        Route::get(
            "/v1/gdpr/contacts/{external_key}/export",
            Profile::api(Scope::Gdpr, Permission::Read).billing(Billing::None),
            export_contact_data,
        )
        .summary("Everything held about a contact: the contact, conversations, messages, scheduled messages, events")
        .tag("gdpr")
        .returns::<SubjectExport>(200),
        Route::delete(
            "/v1/gdpr/contacts/{external_key}",
            Profile::api(Scope::Gdpr, Permission::Delete).billing(Billing::None).audited(),
            erase_contact_data,
        )
        .summary("Erase a contact and their messages' content (a tombstone is kept for audit)")
        .tag("gdpr")
        .returns::<ErasureOut>(200),
    ]
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct SubjectExport {
    pub object: &'static str,
    pub contact: ContactOut,
    #[schema(value_type = Vec<Object>)]
    pub conversations: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub messages: Vec<Value>,
    #[schema(value_type = Vec<Object>)]
    pub scheduled_messages: Vec<Value>,
    /// Events whose payload concerns the contact.
    #[schema(value_type = Vec<Object>)]
    pub events: Vec<Value>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErasureOut {
    pub object: &'static str,
    pub contact_id: String,
    pub erased: bool,
    pub messages_erased: u64,
    pub events_redacted: u64,
    pub dead_letters_redacted: u64,
}

/// The ids whose appearance in a payload ties it to the subject.
async fn subject_ids(
    ex: &mut impl Exec,
    t: &Tenant,
    contact_id: &str,
) -> DbResult<(Vec<String>, Vec<String>, Vec<String>)> {
    let ids = |rows: Vec<crate::store::Row>| {
        rows.iter()
            .map(|r| r.get::<String>("id"))
            .collect::<DbResult<Vec<_>>>()
    };
    let convs = ids(sql(
        "SELECT id FROM conversations WHERE org_id = $1 AND environment = $2 AND contact_id = $3",
    )
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(contact_id)
    .fetch_all(ex)
    .await?)?;
    let mut msgs = Vec::new();
    let mut scheduled = Vec::new();
    for c in &convs {
        msgs.extend(ids(sql(
            "SELECT id FROM messages WHERE org_id = $1 AND conversation_id = $2",
        )
        .bind(t.org())
        .bind(c)
        .fetch_all(ex)
        .await?)?);
        scheduled.extend(ids(sql(
            "SELECT id FROM scheduled_messages WHERE org_id = $1 AND conversation_id = $2",
        )
        .bind(t.org())
        .bind(c)
        .fetch_all(ex)
        .await?)?);
    }
    Ok((convs, msgs, scheduled))
}

/// Events (id, payload) of the tenant mentioning any of `ids` (ids are unique random strings,
/// so a substring match is exact enough).
async fn events_mentioning(
    ex: &mut impl Exec,
    t: &Tenant,
    ids: &[String],
) -> DbResult<Vec<(String, Value)>> {
    let mut out: Vec<(String, Value)> = Vec::new();
    for id in ids {
        let rows = sql("SELECT id, payload FROM events WHERE org_id = $1 AND environment = $2 AND payload LIKE $3")
            .bind(t.org())
            .bind(t.env().as_str())
            .bind(format!("%\"{id}\"%"))
            .fetch_all(ex)
            .await?;
        for r in rows {
            let eid: String = r.get("id")?;
            if !out.iter().any(|(e, _)| *e == eid) {
                out.push((eid, r.json("payload")?));
            }
        }
    }
    Ok(out)
}

async fn rows_json(
    ex: &mut impl Exec,
    table: &str,
    t: &Tenant,
    conversation_ids: &[String],
) -> DbResult<Vec<Value>> {
    let mut out = Vec::new();
    for c in conversation_ids {
        let rows = sql_built(format!(
            "SELECT id, body, metadata, status, created_at FROM {table} WHERE org_id = $1 AND conversation_id = $2 ORDER BY id"
        ))
        .bind(t.org())
        .bind(c)
        .fetch_all(ex)
        .await?;
        for r in rows {
            out.push(json!({
                "id": r.get::<String>("id")?, "conversation_id": c, "body": r.get::<Option<String>>("body")?,
                "metadata": r.json("metadata")?, "status": r.get::<String>("status")?,
                "created_at": crate::clock::rfc3339(r.get("created_at")?),
            }));
        }
    }
    Ok(out)
}

async fn export_contact_data(
    p: Principal,
    State(app): State<AppState>,
    Path(external_key): Path<String>,
) -> ApiResult<axum::Json<SubjectExport>> {
    let t = p.tenant();
    let mut db = app.db.clone();
    let contact = crate::contacts::by_external_key(&mut db, &t, &external_key)
        .await?
        .ok_or(ApiError::NotFound)?;
    let (convs, msgs, scheduled) = subject_ids(&mut db, &t, &contact.id).await?;
    let mut ids = vec![contact.id.clone()];
    ids.extend(convs.iter().cloned());
    ids.extend(msgs.iter().cloned());
    ids.extend(scheduled.iter().cloned());
    let events = events_mentioning(&mut db, &t, &ids)
        .await?
        .into_iter()
        .map(|(_, p)| p)
        .collect();
    let conversations = convs
        .iter()
        .map(|c| json!({ "id": c, "contact_id": contact.id }))
        .collect();
    Ok(axum::Json(SubjectExport {
        object: "gdpr_export",
        messages: rows_json(&mut db, "messages", &t, &convs).await?,
        scheduled_messages: rows_json(&mut db, "scheduled_messages", &t, &convs).await?,
        conversations,
        events,
        contact: contact.into(),
    }))
}

/// A payload with its data replaced by a marker: the shape stays, the content goes.
fn redacted(payload: &Value, id: &str) -> Value {
    json!({ "type": payload["type"], "timestamp": payload["timestamp"], "data": { "erased": true, "event_id": id } })
}

async fn erase(tx: &mut Tx, t: &Tenant, contact_id: &str) -> DbResult<(u64, u64, u64)> {
    let (convs, msgs, scheduled) = subject_ids(tx, t, contact_id).await?;
    let mut ids = vec![contact_id.to_owned()];
    ids.extend(convs);
    ids.extend(msgs);
    ids.extend(scheduled);
    let events = events_mentioning(tx, t, &ids).await?;
    let mut dls = 0;
    for (id, payload) in &events {
        let clean = redacted(payload, id).to_string();
        sql("UPDATE events SET payload = $2 WHERE id = $1")
            .bind(id)
            .bind(&clean)
            .execute(tx)
            .await?;
        dls += sql("UPDATE dead_letters SET payload = $2, updated_at = $3 WHERE event_id = $1")
            .bind(id)
            .bind(&clean)
            .bind(now_ms())
            .execute(tx)
            .await?;
        sql("UPDATE sandbox_deliveries SET payload = $2 WHERE event_id = $1")
            .bind(id)
            .bind(&clean)
            .execute(tx)
            .await?;
        sql("UPDATE delivery_attempts SET response_excerpt = NULL WHERE delivery_id IN (SELECT id FROM deliveries WHERE event_id = $1)")
            .bind(id)
            .execute(tx)
            .await?;
    }
    // Dead letters of scheduled messages carry the body in their own payload.
    for id in &ids {
        dls += sql("UPDATE dead_letters SET payload = $3, updated_at = $4 WHERE org_id = $1 AND source = 'scheduled_message' AND payload LIKE $2")
            .bind(t.org())
            .bind(format!("%\"{id}\"%"))
            .bind(json!({ "erased": true }).to_string())
            .bind(now_ms())
            .execute(tx)
            .await?;
    }
    let messages = crate::messages::erase_for_contact(tx, t, contact_id).await?;
    Ok((messages, events.len() as u64, dls))
}

async fn erase_contact_data(
    p: Principal,
    State(app): State<AppState>,
    meta: RequestMeta,
    idem: Idem,
    Path(external_key): Path<String>,
) -> ApiResult<Response> {
    let t = p.tenant();
    let mut tx = app.db.begin().await?;
    let contact = crate::contacts::by_external_key(&mut tx, &t, &external_key)
        .await?
        .ok_or(ApiError::NotFound)?;
    let (messages, events, dls) = erase(&mut tx, &t, &contact.id).await?;
    crate::contacts::erase(&mut tx, &t, &contact.id).await?;
    audit::record(
        &mut tx,
        &meta,
        Entry::new(Some(&p.org), p.actor(), "gdpr.erased")
            .target("contact", &contact.id)
            .details(json!({ "messages_erased": messages, "events_redacted": events, "dead_letters_redacted": dls })),
    )
    .await?;
    crate::events::emit(
        &mut tx,
        &t,
        "contact.deleted",
        json!({ "id": contact.id, "erased": true, "livemode": t.livemode() }),
    )
    .await?;
    let out = ErasureOut {
        object: "gdpr_erasure",
        contact_id: contact.id,
        erased: true,
        messages_erased: messages,
        events_redacted: events,
        dead_letters_redacted: dls,
    };
    idem.commit(tx, StatusCode::OK, &out).await
}

/// The same erasure for `DELETE /v1/contacts/{id}`, so that deleting a contact removes its
/// personal data everywhere too.
pub async fn erase_by_id(tx: &mut Tx, t: &Tenant, contact_id: &str) -> DbResult<()> {
    erase(tx, t, contact_id).await.map(|_| ())
}
