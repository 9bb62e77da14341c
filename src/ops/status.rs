//! The public status page: `GET /status` (server-rendered HTML, no JavaScript, a strict CSP
//! with a fresh nonce) and `GET /status/summary.json` (the Statuspage `summary.json` shape).
//! Components derive from the deep-health figures and open incidents; one sample per
//! component per minute keeps 90 days of uptime. Nothing sensitive is shown: statuses only,
//! never hosts, counts or errors.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::{DOCTYPE, Markup, PreEscaped, html};
use serde::Deserialize;
use serde_json::{Value, json};

use super::deep_health::{AlertName, Figures, alerts_of, figures};
use crate::clock::{now_ms, rfc3339};
use crate::http::middleware::{csp_nonce, html_csp};
use crate::http::routes::{Profile, Route};
use crate::http::text::Line;
use crate::ids::OrgId;
use crate::incidents::{self, Component, Impact, Incident};
use crate::jobs::queue::complete;
use crate::jobs::{Completion, Job, JobContext, JobKind, NoPayload};
use crate::state::AppState;
use crate::store::Q;

const DAY_MS: i64 = 86_400_000;

crate::text_enum::text_enum! {
    /// Statuspage component statuses.
    pub enum ComponentStatus {
        Operational = "operational",
        UnderMaintenance = "under_maintenance",
        DegradedPerformance = "degraded_performance",
        PartialOutage = "partial_outage",
        MajorOutage = "major_outage",
    }
}

impl ComponentStatus {
    /// The worse of two statuses (declared from best to worst).
    fn worse(self, other: ComponentStatus) -> ComponentStatus {
        let rank = |s| ComponentStatus::ALL.iter().position(|x| *x == s);
        if rank(other) > rank(self) {
            other
        } else {
            self
        }
    }

    /// What an incident of `impact` makes of the components it names.
    fn of_impact(impact: Impact) -> ComponentStatus {
        match impact {
            Impact::Critical => ComponentStatus::MajorOutage,
            Impact::Major => ComponentStatus::PartialOutage,
            Impact::Minor => ComponentStatus::DegradedPerformance,
            Impact::None => ComponentStatus::Operational,
        }
    }

    fn label(self) -> &'static str {
        match self {
            ComponentStatus::Operational => "Operational",
            ComponentStatus::DegradedPerformance => "Degraded performance",
            ComponentStatus::PartialOutage => "Partial outage",
            ComponentStatus::MajorOutage => "Major outage",
            ComponentStatus::UnderMaintenance => "Under maintenance",
        }
    }
}

pub fn routes() -> Vec<Route> {
    vec![
        Route::get("/status", Profile::public(), get_status_page)
            .query::<StatusQuery>()
            .summary("The public status page (HTML, works without JavaScript)")
            .tag("status")
            .content_type("text/html"),
        Route::get(
            "/status/summary.json",
            Profile::public(),
            get_status_summary,
        )
        .query::<StatusQuery>()
        .summary("Status in the Statuspage summary.json shape")
        .tag("status")
        .content_type("application/json"),
        Route::post("/status/csp-report", Profile::public(), post_csp_report)
            .summary("Receives Content-Security-Policy violation reports from browsers")
            .tag("status")
            .no_content(),
    ]
}

/// The current status of each component.
pub fn component_statuses(
    db_ok: bool,
    f: Option<&Figures>,
    alerts: &[super::deep_health::Alert],
    open: &[Incident],
) -> Vec<(Component, ComponentStatus)> {
    use ComponentStatus::*;
    let has = |n: AlertName| alerts.iter().any(|a| a.name == n);
    Component::ALL
        .iter()
        .map(|&c| {
            let mut s = match (c, f) {
                (_, None) => MajorOutage,
                (Component::Api, Some(_)) => {
                    if db_ok {
                        Operational
                    } else {
                        MajorOutage
                    }
                }
                (Component::Webhooks, Some(_)) => {
                    match (has(AlertName::QueueBacklog), has(AlertName::DlqSpike)) {
                        (true, true) => PartialOutage,
                        (false, false) => Operational,
                        _ => DegradedPerformance,
                    }
                }
                (Component::Scheduler, Some(f)) => match f.overdue_scheduled {
                    0 => Operational,
                    1..=100 => DegradedPerformance,
                    _ => PartialOutage,
                },
                (Component::Workers, Some(f)) => {
                    if f.live_workers == 0 {
                        MajorOutage
                    } else if has(AlertName::WorkerStale) || has(AlertName::BuildMismatch) {
                        DegradedPerformance
                    } else {
                        Operational
                    }
                }
            };
            for i in open.iter().filter(|i| i.is_open()) {
                if i.components.contains(&c) {
                    s = s.worse(ComponentStatus::of_impact(i.impact));
                }
            }
            (c, s)
        })
        .collect()
}

/// Everything the page and the summary show.
struct Snapshot {
    components: Vec<(Component, ComponentStatus)>,
    incidents: Vec<Incident>,
    uptime: HashMap<Component, Vec<Option<f64>>>,
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

/// The branding of `org` (when the page names one), else the platform org's, else ours.
async fn brand(state: &AppState, org: Option<&OrgId>) -> Brand {
    let mut db = state.db.clone();
    let found = match org {
        Some(o) => crate::branding::store::get(&mut db, o).await,
        None => crate::branding::store::platform(&mut db).await,
    };
    let d = Brand::default();
    match found.ok().flatten() {
        Some(b) => Brand {
            name: b.name,
            primary: b.primary_color.unwrap_or(d.primary),
            accent: b.accent_color.unwrap_or(d.accent),
            logo_url: b.logo_url,
        },
        None => d,
    }
}

/// Per component, 90 days of daily uptime (fraction operational), oldest first.
async fn uptime(state: &AppState) -> HashMap<Component, Vec<Option<f64>>> {
    let today = now_ms() / DAY_MS;
    let first = today - 89;
    let rows: Vec<(Component, i64, i64, i64)> = Q::read(
        "SELECT component, taken_at / 86400000 AS day, COUNT(*) AS n,
                SUM(CASE WHEN status = 'operational' THEN 1 ELSE 0 END) AS ok
         FROM health_samples WHERE taken_at >= $1 GROUP BY component, taken_at / 86400000",
    )
    .bind(first * DAY_MS)
    .fetch_all(&mut state.db.clone())
    .await
    .unwrap_or_default();
    let mut out: HashMap<Component, Vec<Option<f64>>> = Component::ALL
        .iter()
        .map(|c| (*c, vec![None; 90]))
        .collect();
    for (c, day, n, ok) in rows {
        if let (Some(v), Ok(i)) = (out.get_mut(&c), usize::try_from(day - first))
            && i < 90
            && n > 0
        {
            v[i] = Some(ok as f64 / n as f64);
        }
    }
    out
}

async fn snapshot(state: &AppState, org: Option<&OrgId>) -> Snapshot {
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
pub struct SampleHealth;

impl JobKind for SampleHealth {
    const KIND: &'static str = "health.sample";
    type Payload = NoPayload;
}

impl Job for SampleHealth {
    type Kind = Self;

    async fn run(&self, cx: &JobContext<'_>, _: NoPayload) -> anyhow::Result<()> {
        let state = cx.app;
        let snap = snapshot(state, None).await;
        let minute = now_ms() / 60_000;
        let mut tx = state.db.begin().await?;
        for (component, status) in &snap.components {
            Q::write("INSERT INTO health_samples (id, component, status, taken_at) VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING")
                .bind(format!("{component}:{minute}"))
                .bind(*component)
                .bind(*status)
                .bind(minute * 60_000)
                .execute(&mut tx)
                .await?;
        }
        tx.commit().await?;
        complete(&state.db, cx.job, &Completion::Done).await?;
        Ok(())
    }
}

fn indicator(snap: &Snapshot) -> (&'static str, &'static str) {
    let worst = snap
        .components
        .iter()
        .fold(ComponentStatus::Operational, |w, c| w.worse(c.1));
    let by_incident = snap
        .incidents
        .iter()
        .filter(|i| i.is_open())
        .fold(ComponentStatus::Operational, |w, i| {
            w.worse(ComponentStatus::of_impact(i.impact))
        });
    match worst.worse(by_incident) {
        ComponentStatus::MajorOutage => ("critical", "Major System Outage"),
        ComponentStatus::PartialOutage => ("major", "Partial System Outage"),
        ComponentStatus::DegradedPerformance => ("minor", "Minor Service Degradation"),
        ComponentStatus::UnderMaintenance => ("maintenance", "Service Under Maintenance"),
        ComponentStatus::Operational => ("none", "All Systems Operational"),
    }
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StatusQuery {
    /// An org id: its white-label branding. Anything else shows the deployment's own.
    #[param(inline)]
    org: Option<Line<0, 64>>,
}

impl StatusQuery {
    fn org(&self) -> Option<OrgId> {
        self.org.as_deref().and_then(OrgId::parse)
    }
}

async fn get_status_summary(
    State(state): State<AppState>,
    Query(q): Query<StatusQuery>,
) -> Response {
    let snap = snapshot(&state, q.org().as_ref()).await;
    let now = rfc3339(now_ms());
    // Absolute links only when the public URL is configured: never the listen address.
    let base = state.config.public_base_url.clone().unwrap_or_default();
    let (indicator, description) = indicator(&snap);
    let components: Vec<Value> = snap
        .components
        .iter()
        .enumerate()
        .map(|(i, (component, status))| {
            json!({
                "id": component, "name": component.name(), "status": status, "created_at": rfc3339(state.started_at_ms),
                "updated_at": now, "position": i + 1, "description": null, "showcase": true,
                "start_date": null, "group_id": null, "page_id": "rampart", "group": false,
                "only_show_if_degraded": false,
            })
        })
        .collect();
    let incidents: Vec<Value> = snap
        .incidents
        .iter()
        .filter(|i| i.is_open())
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
    let (open, past): (Vec<&Incident>, Vec<&Incident>) =
        snap.incidents.iter().partition(|i| i.is_open());
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
                        div.card.inc id=(i.id.as_str()) {
                            h3 { (i.title) }
                            div.muted { "Impact: " (i.impact) " · " (i.status) }
                            @for u in &i.updates {
                                div.upd { strong { (u.status) } " — " (u.message) div.muted { (rfc3339(u.created_at)) } }
                            }
                        }
                    }
                    div.card {
                        @for (component, status) in &snap.components {
                            div.comp {
                                div.row { strong { (component.name()) } span class=(status.as_str()) { (status.label()) } }
                                div.bars {
                                    @for (d, v) in snap.uptime.get(component).cloned().unwrap_or_else(|| vec![None; 90]).iter().enumerate() {
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
                            div.card.inc id=(i.id.as_str()) {
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
    let snap = snapshot(&state, q.org().as_ref()).await;
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

/// Browsers post CSP violations here: counted in `rampart_csp_violations_total`, never
/// logged one by one (anyone can post them, so a log line each would let them flood the log)
/// nor stored.
async fn post_csp_report(_body: crate::http::body::RawBody) -> StatusCode {
    metrics::counter!("rampart_csp_violations_total").increment(1);
    StatusCode::NO_CONTENT
}
