//! The public status page: `GET /status` (server-rendered HTML, no JavaScript, a strict CSP
//! with a fresh nonce) and `GET /status/summary.json` (the Statuspage `summary.json` shape).
//! Components derive from the deep-health figures and open incidents; one sample per
//! component per minute keeps 90 days of uptime. Nothing sensitive is shown: statuses only,
//! never hosts, counts or errors.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::deep_health::{Figures, alerts_of, figures};
use super::incidents::{self, Incident};
use crate::app::AppState;
use crate::clock::{now_ms, rfc3339};
use crate::http::middleware::{csp_nonce, html_csp};
use crate::http::routes::{Profile, Route};
use crate::jobs::queue::complete;
use crate::jobs::{ClaimedJob, Completion};
use crate::store::sql;

pub const SAMPLE_JOB: &str = "health.sample";
const DAY_MS: i64 = 86_400_000;

/// The components the page shows: (id, name).
pub const COMPONENTS: [(&str, &str); 4] = [
    ("api", "API"),
    ("webhooks", "Webhook delivery"),
    ("scheduler", "Scheduled messages"),
    ("workers", "Background processing"),
];

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/status", Profile::public(), get_status_page)
            .summary("The public status page (HTML, works without JavaScript)")
            .tag("status")
            .param(
                "org",
                "string",
                "an org id whose white-label branding to show",
            )
            .content_type("text/html"),
        Route::get(
            "/status/summary.json",
            Profile::public(),
            get_status_summary,
        )
        .summary("Status in the Statuspage summary.json shape")
        .tag("status")
        .param(
            "org",
            "string",
            "an org id whose white-label branding to show",
        )
        .content_type("application/json"),
        Route::post("/status/csp-report", Profile::public(), post_csp_report)
            .summary("Receives Content-Security-Policy violation reports from browsers")
            .tag("status")
            .no_content(),
    ]
}

/// Statuspage component statuses, from best to worst.
const ORDER: [&str; 5] = [
    "operational",
    "under_maintenance",
    "degraded_performance",
    "partial_outage",
    "major_outage",
];

fn worse<'a>(a: &'a str, b: &'a str) -> &'a str {
    let rank = |s: &str| ORDER.iter().position(|x| *x == s).unwrap_or(0);
    if rank(b) > rank(a) { b } else { a }
}

fn impact_status(impact: &str) -> &'static str {
    match impact {
        "critical" => "major_outage",
        "major" => "partial_outage",
        "minor" => "degraded_performance",
        _ => "operational",
    }
}

/// The current status of each component.
pub fn component_statuses(
    db_ok: bool,
    f: Option<&Figures>,
    alerts: &[super::deep_health::Alert],
    open: &[Incident],
) -> Vec<(&'static str, &'static str, &'static str)> {
    let has = |n: &str| alerts.iter().any(|a| a.name == n);
    COMPONENTS
        .iter()
        .map(|(id, name)| {
            let mut s = match (*id, f) {
                (_, None) => "major_outage",
                ("api", Some(_)) => {
                    if db_ok {
                        "operational"
                    } else {
                        "major_outage"
                    }
                }
                ("webhooks", Some(_)) => match (has("queue_backlog"), has("dlq_spike")) {
                    (true, true) => "partial_outage",
                    (false, false) => "operational",
                    _ => "degraded_performance",
                },
                ("scheduler", Some(f)) => match f.overdue_scheduled {
                    0 => "operational",
                    1..=100 => "degraded_performance",
                    _ => "partial_outage",
                },
                ("workers", Some(f)) => {
                    if f.live_workers == 0 {
                        "major_outage"
                    } else if has("worker_stale") || has("build_mismatch") {
                        "degraded_performance"
                    } else {
                        "operational"
                    }
                }
                _ => "operational",
            };
            for i in open.iter().filter(|i| i.status != "resolved") {
                if i.components.iter().any(|c| c == id) {
                    s = worse(s, impact_status(&i.impact));
                }
            }
            (*id, *name, s)
        })
        .collect()
}

/// Everything the page and the summary show.
struct Snapshot {
    components: Vec<(&'static str, &'static str, &'static str)>,
    incidents: Vec<Incident>,
    uptime: HashMap<String, Vec<Option<f64>>>,
    brand: Brand,
}

#[derive(Debug, Clone)]
pub struct Brand {
    pub name: String,
    pub primary: String,
    pub accent: String,
    pub logo_url: Option<String>,
}

impl Default for Brand {
    fn default() -> Self {
        Brand {
            name: "Rampart".into(),
            primary: "#1d4ed8".into(),
            accent: "#0f766e".into(),
            logo_url: None,
        }
    }
}

async fn brand(state: &AppState, org: Option<&str>) -> Brand {
    let q = match org.and_then(crate::ids::OrgId::parse) {
        Some(o) => sql(
            "SELECT name, primary_color, accent_color, logo_url FROM branding WHERE org_id = $1",
        )
        .bind(o),
        None => sql(
            "SELECT b.name, b.primary_color, b.accent_color, b.logo_url FROM branding b JOIN orgs o ON o.id = b.org_id WHERE o.is_platform ORDER BY o.created_at LIMIT 1",
        ),
    };
    let row = q.fetch_optional(&mut state.db.clone()).await.ok().flatten();
    let d = Brand::default();
    match row {
        Some(r) => Brand {
            name: r.get::<String>("name").unwrap_or(d.name),
            primary: r
                .get::<Option<String>>("primary_color")
                .ok()
                .flatten()
                .unwrap_or(d.primary),
            accent: r
                .get::<Option<String>>("accent_color")
                .ok()
                .flatten()
                .unwrap_or(d.accent),
            logo_url: r.get::<Option<String>>("logo_url").ok().flatten(),
        },
        None => d,
    }
}

/// Per component, 90 days of daily uptime (fraction operational), oldest first.
async fn uptime(state: &AppState) -> HashMap<String, Vec<Option<f64>>> {
    let today = now_ms() / DAY_MS;
    let first = today - 89;
    let rows = sql("SELECT component, taken_at / 86400000 AS day, COUNT(*) AS n,
                        SUM(CASE WHEN status = 'operational' THEN 1 ELSE 0 END) AS ok
                    FROM health_samples WHERE taken_at >= $1 GROUP BY component, taken_at / 86400000")
        .bind(first * DAY_MS)
        .fetch_all(&mut state.db.clone())
        .await
        .unwrap_or_default();
    let mut out: HashMap<String, Vec<Option<f64>>> = COMPONENTS
        .iter()
        .map(|(id, _)| ((*id).to_owned(), vec![None; 90]))
        .collect();
    for r in rows {
        let (Ok(c), Ok(day), Ok(n), Ok(ok)) = (
            r.get::<String>("component"),
            r.get::<i64>("day"),
            r.get::<i64>("n"),
            r.get::<i64>("ok"),
        ) else {
            continue;
        };
        if let (Some(v), Ok(i)) = (out.get_mut(&c), usize::try_from(day - first))
            && i < 90
            && n > 0
        {
            v[i] = Some(ok as f64 / n as f64);
        }
    }
    out
}

async fn snapshot(state: &AppState, org: Option<&str>) -> Snapshot {
    let db_ok = state.db.ping().await.is_ok();
    let f = if db_ok {
        figures(state).await.ok()
    } else {
        None
    };
    let alerts = alerts_of(state, f.as_ref());
    let incidents = if db_ok {
        incidents::recent(&mut state.db.clone(), now_ms() - 7 * DAY_MS)
            .await
            .unwrap_or_default()
    } else {
        Vec::new()
    };
    Snapshot {
        components: component_statuses(db_ok, f.as_ref(), &alerts, &incidents),
        uptime: if db_ok {
            uptime(state).await
        } else {
            HashMap::new()
        },
        incidents,
        brand: brand(state, org).await,
    }
}

/// The `health.sample` job: records this minute's component statuses (once per minute, however
/// many workers run it).
pub async fn sample(state: &AppState, job: &ClaimedJob) -> anyhow::Result<()> {
    let snap = snapshot(state, None).await;
    let minute = now_ms() / 60_000;
    let mut tx = state.db.begin().await?;
    for (id, _, status) in &snap.components {
        sql("INSERT INTO health_samples (id, component, status, taken_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING")
            .bind(format!("{id}:{minute}"))
            .bind(*id)
            .bind(*status)
            .bind(minute * 60_000)
            .execute(&mut tx)
            .await?;
    }
    tx.commit().await?;
    complete(&state.db, job, &Completion::Done).await?;
    Ok(())
}

fn indicator(snap: &Snapshot) -> (&'static str, &'static str) {
    let worst = snap
        .components
        .iter()
        .fold("operational", |w, c| worse(w, c.2));
    let by_incident = snap
        .incidents
        .iter()
        .filter(|i| i.status != "resolved")
        .fold("operational", |w, i| worse(w, impact_status(&i.impact)));
    match worse(worst, by_incident) {
        "major_outage" => ("critical", "Major System Outage"),
        "partial_outage" => ("major", "Partial System Outage"),
        "degraded_performance" => ("minor", "Minor Service Degradation"),
        "under_maintenance" => ("maintenance", "Service Under Maintenance"),
        _ => ("none", "All Systems Operational"),
    }
}

#[derive(Debug, Deserialize)]
pub struct StatusQuery {
    org: Option<String>,
}

async fn get_status_summary(
    State(state): State<AppState>,
    Query(q): Query<StatusQuery>,
) -> Response {
    let snap = snapshot(&state, q.org.as_deref()).await;
    let now = rfc3339(now_ms());
    // Absolute links only when the public URL is configured: never the listen address.
    let base = state.config.public_base_url.clone().unwrap_or_default();
    let (indicator, description) = indicator(&snap);
    let components: Vec<Value> = snap
        .components
        .iter()
        .enumerate()
        .map(|(i, (id, name, status))| {
            json!({
                "id": id, "name": name, "status": status, "created_at": rfc3339(state.started_at_ms),
                "updated_at": now, "position": i + 1, "description": null, "showcase": true,
                "start_date": null, "group_id": null, "page_id": "rampart", "group": false,
                "only_show_if_degraded": false,
            })
        })
        .collect();
    let incidents: Vec<Value> = snap
        .incidents
        .iter()
        .filter(|i| i.status != "resolved")
        .map(|i| incident_json(i, &base))
        .collect();
    let body = json!({
        "page": { "id": "rampart", "name": snap.brand.name, "url": format!("{base}/status"), "time_zone": "Etc/UTC", "updated_at": now },
        "status": { "indicator": indicator, "description": description },
        "components": components,
        "incidents": incidents,
        "scheduled_maintenances": [],
    });
    let mut res = axum::Json(body).into_response();
    res.headers_mut().insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=10"),
    );
    res
}

fn incident_json(i: &Incident, base: &str) -> Value {
    json!({
        "id": i.id, "name": i.title, "status": i.status, "impact": i.impact,
        "created_at": rfc3339(i.created_at), "updated_at": rfc3339(i.updated_at),
        "started_at": rfc3339(i.created_at), "resolved_at": i.resolved_at.map(rfc3339),
        "monitoring_at": null, "shortlink": format!("{base}/status#{}", i.id), "page_id": "rampart",
        "components": i.components.iter().map(|c| json!({ "id": c })).collect::<Vec<_>>(),
        "incident_updates": i.updates.iter().map(|u| json!({
            "id": u.id, "status": u.status, "body": u.message, "incident_id": i.id,
            "created_at": rfc3339(u.created_at), "updated_at": rfc3339(u.created_at), "display_at": rfc3339(u.created_at),
            "affected_components": i.components,
        })).collect::<Vec<_>>(),
    })
}

fn label(status: &str) -> &'static str {
    match status {
        "operational" => "Operational",
        "degraded_performance" => "Degraded performance",
        "partial_outage" => "Partial outage",
        "major_outage" => "Major outage",
        "under_maintenance" => "Under maintenance",
        _ => "Unknown",
    }
}

fn bar_class(v: Option<f64>) -> &'static str {
    match v {
        None => "bar nodata",
        Some(x) if x >= 0.999 => "bar ok",
        Some(x) if x >= 0.95 => "bar warn",
        Some(_) => "bar down",
    }
}

const STYLE: &str = "
*{box-sizing:border-box}body{margin:0;font:15px/1.5 system-ui,sans-serif;color:#1f2937;background:#f8fafc}
header{background:var(--primary);color:#fff;padding:20px 0}header .wrap{display:flex;align-items:center;gap:12px}
header img{height:32px}header h1{font-size:20px;margin:0}.wrap{max-width:860px;margin:0 auto;padding:0 20px}
.banner{margin:24px 0;padding:16px 20px;border-radius:8px;color:#fff;font-weight:600;font-size:18px}
.s-none{background:#15803d}.s-minor{background:#ca8a04}.s-major{background:#ea580c}.s-critical{background:#b91c1c}.s-maintenance{background:#2563eb}
.card{background:#fff;border:1px solid #e2e8f0;border-radius:8px;margin:16px 0;padding:16px 20px}
.comp{padding:12px 0;border-top:1px solid #f1f5f9}.comp:first-child{border-top:0}
.row{display:flex;justify-content:space-between;align-items:baseline}
.operational{color:#15803d}.degraded_performance{color:#ca8a04}.partial_outage{color:#ea580c}.major_outage{color:#b91c1c}.under_maintenance{color:#2563eb}
.bars{display:flex;gap:2px;margin-top:8px;height:28px}.bar{flex:1;border-radius:2px}
.ok{background:#22c55e}.warn{background:#eab308}.down{background:#ef4444}.nodata{background:#e2e8f0}
.legend{display:flex;justify-content:space-between;color:#64748b;font-size:12px}
h2{font-size:16px;margin:28px 0 8px}.inc h3{margin:0 0 4px;font-size:16px}.upd{margin:8px 0 0 0;padding-left:12px;border-left:3px solid var(--accent)}
.muted{color:#64748b;font-size:13px}footer{margin:32px 0;color:#94a3b8;font-size:12px;text-align:center}
";

fn render(snap: &Snapshot, nonce: &str) -> Markup {
    let (ind, desc) = indicator(snap);
    let css = format!(
        ":root{{--primary:{};--accent:{}}}{STYLE}",
        snap.brand.primary, snap.brand.accent
    );
    let open: Vec<&Incident> = snap
        .incidents
        .iter()
        .filter(|i| i.status != "resolved")
        .collect();
    let past: Vec<&Incident> = snap
        .incidents
        .iter()
        .filter(|i| i.status == "resolved")
        .collect();
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (snap.brand.name) " status" }
                style nonce=(nonce) { (PreEscaped(css)) }
            }
            body {
                header { div.wrap {
                    @if let Some(logo) = &snap.brand.logo_url { img src=(logo) alt=""; }
                    h1 { (snap.brand.name) " status" }
                } }
                main.wrap {
                    div class=(format!("banner s-{ind}")) { (desc) }
                    @for i in &open {
                        div.card.inc id=(i.id) {
                            h3 { (i.title) }
                            div.muted { "Impact: " (i.impact) " · " (i.status) }
                            @for u in &i.updates {
                                div.upd { strong { (u.status) } " — " (u.message) div.muted { (rfc3339(u.created_at)) } }
                            }
                        }
                    }
                    div.card {
                        @for (id, name, status) in &snap.components {
                            div.comp {
                                div.row { strong { (name) } span class=(status) { (label(status)) } }
                                div.bars {
                                    @for (d, v) in snap.uptime.get(*id).cloned().unwrap_or_else(|| vec![None; 90]).iter().enumerate() {
                                        span class=(bar_class(*v)) title=(match v { Some(x) => format!("{} days ago: {:.2}% uptime", 89 - d, x * 100.0), None => format!("{} days ago: no data", 89 - d) }) {}
                                    }
                                }
                                div.legend { span { "90 days ago" } span { "today" } }
                            }
                        }
                    }
                    @if !past.is_empty() {
                        h2 { "Past incidents (7 days)" }
                        @for i in &past {
                            div.card.inc id=(i.id) {
                                h3 { (i.title) }
                                div.muted { "Resolved " (i.resolved_at.map(rfc3339).unwrap_or_default()) }
                                @for u in &i.updates {
                                    div.upd { strong { (u.status) } " — " (u.message) }
                                }
                            }
                        }
                    }
                    footer { "Updated " (rfc3339(now_ms())) " · " a href="/status/summary.json" { "summary.json" } }
                }
            }
        }
    }
}

async fn get_status_page(State(state): State<AppState>, Query(q): Query<StatusQuery>) -> Response {
    let snap = snapshot(&state, q.org.as_deref()).await;
    let nonce = csp_nonce();
    let mut res = (
        StatusCode::OK,
        axum::response::Html(render(&snap, &nonce).into_string()),
    )
        .into_response();
    let csp = format!("{}; report-uri /status/csp-report", html_csp(&nonce));
    if let Ok(v) = HeaderValue::from_str(&csp) {
        res.headers_mut().insert(header::CONTENT_SECURITY_POLICY, v);
    }
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    res
}

/// Browsers post CSP violations here: counted and logged (truncated), never stored.
async fn post_csp_report(body: Bytes) -> StatusCode {
    metrics::counter!("rampart_csp_violations_total").increment(1);
    let text = String::from_utf8_lossy(&body[..body.len().min(2048)]).into_owned();
    tracing::warn!(report = %text, "content security policy violation reported");
    StatusCode::NO_CONTENT
}
