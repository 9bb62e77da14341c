//! Incidents' SQL.

use super::{Component, Impact, Incident, IncidentStatus, Update};
use crate::clock::now_ms;
use crate::ids::{IncidentId, IncidentUpdateId, UserId};
use crate::store::{DbResult, Exec, JsonText, Q};

#[derive(sqlx::FromRow)]
struct Row {
    id: IncidentId,
    title: String,
    impact: Impact,
    status: IncidentStatus,
    components: JsonText<Vec<Component>>,
    created_at: i64,
    updated_at: i64,
    resolved_at: Option<i64>,
}

async fn add_update(
    ex: &mut impl Exec,
    incident: &IncidentId,
    status: IncidentStatus,
    message: &str,
    by: Option<&UserId>,
) -> DbResult<()> {
    Q::write("INSERT INTO incident_updates (id, incident_id, status, message, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(IncidentUpdateId::new())
        .bind(incident)
        .bind(status)
        .bind(message)
        .bind(by)
        .bind(now_ms())
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn open(
    ex: &mut impl Exec,
    title: &str,
    impact: Impact,
    status: IncidentStatus,
    components: &[Component],
    message: &str,
    by: Option<&UserId>,
) -> DbResult<IncidentId> {
    let id = IncidentId::new();
    let now = now_ms();
    let components = serde_json::to_string(components)
        .map_err(|e| crate::store::DbError::Other(sqlx::Error::Encode(Box::new(e))))?;
    Q::write("INSERT INTO incidents (id, title, impact, status, components, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)")
        .bind(&id)
        .bind(title)
        .bind(impact)
        .bind(status)
        .bind(components)
        .bind(by)
        .bind(now)
        .execute(ex)
        .await?;
    add_update(ex, &id, status, message, by).await?;
    Ok(id)
}

/// Adds an update; `resolved` closes the incident. `false`: no such open incident.
pub async fn update(
    ex: &mut impl Exec,
    id: &IncidentId,
    status: IncidentStatus,
    message: &str,
    impact: Option<Impact>,
    by: Option<&UserId>,
) -> DbResult<bool> {
    let now = now_ms();
    let n = Q::write(
        "UPDATE incidents SET status = $2, impact = COALESCE($3, impact), updated_at = $4,
                 resolved_at = CASE WHEN $2 = 'resolved' THEN $4 ELSE NULL END
                 WHERE id = $1 AND status <> 'resolved'",
    )
    .bind(id)
    .bind(status)
    .bind(impact)
    .bind(now)
    .execute(ex)
    .await?;
    if n == 0 {
        return Ok(false);
    }
    add_update(ex, id, status, message, by).await?;
    Ok(true)
}

/// Open incidents, and those resolved since `resolved_since`, newest first, with updates.
pub async fn recent(ex: &mut impl Exec, resolved_since: i64) -> DbResult<Vec<Incident>> {
    let rows: Vec<Row> = Q::read(
        "SELECT id, title, impact, status, components, created_at, updated_at, resolved_at
         FROM incidents WHERE status <> 'resolved' OR resolved_at >= $1 ORDER BY created_at DESC LIMIT 50",
    )
    .bind(resolved_since)
    .fetch_all(ex)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let updates: Vec<Update> = Q::read("SELECT id, status, message, created_at FROM incident_updates WHERE incident_id = $1 ORDER BY created_at DESC, id DESC")
            .bind(&r.id)
            .fetch_all(ex)
            .await?;
        out.push(Incident {
            id: r.id,
            title: r.title,
            impact: r.impact,
            status: r.status,
            components: r.components.into_inner(),
            created_at: r.created_at,
            updated_at: r.updated_at,
            resolved_at: r.resolved_at,
            updates,
        });
    }
    Ok(out)
}
