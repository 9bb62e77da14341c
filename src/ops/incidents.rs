//! Incidents: what the deployment's operator tells the world on the status page, with a
//! timeline of updates. Deployment-wide, so only the platform org's admins write them.

use serde::Serialize;
use serde_json::Value;

use crate::clock::now_ms;
use crate::ids::new_id;
use crate::store::{DbResult, Exec, Row, sql};

pub const IMPACTS: [&str; 4] = ["none", "minor", "major", "critical"];
pub const STATUSES: [&str; 4] = ["investigating", "identified", "monitoring", "resolved"];

#[derive(Debug, Clone, Serialize)]
pub struct Update {
    pub id: String,
    pub status: String,
    pub message: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Incident {
    pub id: String,
    pub title: String,
    pub impact: String,
    pub status: String,
    pub components: Vec<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub resolved_at: Option<i64>,
    pub updates: Vec<Update>,
}

impl Incident {
    fn from_row(r: &Row) -> DbResult<Incident> {
        Ok(Incident {
            id: r.get("id")?,
            title: r.get("title")?,
            impact: r.get("impact")?,
            status: r.get("status")?,
            components: serde_json::from_str(&r.get::<String>("components")?).unwrap_or_default(),
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
            resolved_at: r.get("resolved_at")?,
            updates: Vec::new(),
        })
    }
}

const COLUMNS: &str = "id, title, impact, status, components, created_at, updated_at, resolved_at";

async fn add_update(
    ex: &mut impl Exec,
    incident: &str,
    status: &str,
    message: &str,
    by: Option<&str>,
) -> DbResult<()> {
    sql("INSERT INTO incident_updates (id, incident_id, status, message, created_by, created_at) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(new_id("iup"))
        .bind(incident)
        .bind(status)
        .bind(message)
        .bind(by.map(str::to_owned))
        .bind(now_ms())
        .execute(ex)
        .await?;
    Ok(())
}

pub async fn open(
    ex: &mut impl Exec,
    title: &str,
    impact: &str,
    status: &str,
    components: &[String],
    message: &str,
    by: Option<&str>,
) -> DbResult<String> {
    let id = new_id("inc");
    let now = now_ms();
    sql("INSERT INTO incidents (id, title, impact, status, components, created_by, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)")
        .bind(&id)
        .bind(title)
        .bind(impact)
        .bind(status)
        .bind(Value::from(components.to_vec()).to_string())
        .bind(by.map(str::to_owned))
        .bind(now)
        .execute(ex)
        .await?;
    add_update(ex, &id, status, message, by).await?;
    Ok(id)
}

/// Adds an update; `resolved` closes the incident. `false`: no such open incident.
pub async fn update(
    ex: &mut impl Exec,
    id: &str,
    status: &str,
    message: &str,
    impact: Option<&str>,
    by: Option<&str>,
) -> DbResult<bool> {
    let now = now_ms();
    let n = sql(
        "UPDATE incidents SET status = $2, impact = COALESCE($3, impact), updated_at = $4,
                 resolved_at = CASE WHEN $2 = 'resolved' THEN $4 ELSE NULL END
                 WHERE id = $1 AND status <> 'resolved'",
    )
    .bind(id)
    .bind(status)
    .bind(impact.map(str::to_owned))
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
    let rows = crate::store::sql_built(format!(
        "SELECT {COLUMNS} FROM incidents WHERE status <> 'resolved' OR resolved_at >= $1 ORDER BY created_at DESC LIMIT 50"
    ))
    .bind(resolved_since)
    .fetch_all(ex)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in &rows {
        let mut i = Incident::from_row(r)?;
        let ups = sql("SELECT id, status, message, created_at FROM incident_updates WHERE incident_id = $1 ORDER BY created_at DESC, id DESC")
            .bind(&i.id)
            .fetch_all(ex)
            .await?;
        i.updates = ups
            .iter()
            .map(|u| {
                Ok(Update {
                    id: u.get("id")?,
                    status: u.get("status")?,
                    message: u.get("message")?,
                    created_at: u.get("created_at")?,
                })
            })
            .collect::<DbResult<_>>()?;
        out.push(i);
    }
    Ok(out)
}
