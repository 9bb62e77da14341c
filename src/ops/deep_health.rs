//! `GET /health/deep`: `application/health+json` as the IETF health-check draft shapes it —
//! `status` pass|warn|fail (fail → 503), `releaseId`, `checks` keyed `component:measurement`,
//! and `alerts[]`.

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::clock::{self, now_ms};
use crate::ids::WorkerId;
use crate::state::AppState;
use crate::store::{DbResult, Q};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Pass,
    Warn,
    Fail,
}

/// One measurement of one component.
pub struct Check {
    pub key: String,
    pub component_type: &'static str,
    pub value: Value,
    pub unit: &'static str,
    pub status: Status,
    pub output: Option<String>,
}

crate::text_enum::text_enum! {
    /// The alerts deep health raises (SPEC §7).
    pub enum AlertName {
        DlqSpike = "dlq_spike",
        QueueBacklog = "queue_backlog",
        WorkerStale = "worker_stale",
        BuildMismatch = "build_mismatch",
        QuotaStoreDegraded = "quota_store_degraded",
    }
}

impl AlertName {
    /// An alert about this instance, not the deployment: each instance has its own state.
    pub fn is_per_instance(self) -> bool {
        self == AlertName::QuotaStoreDegraded
    }
}

/// An active alert.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Alert {
    pub name: AlertName,
    pub severity: &'static str,
    pub message: String,
    #[serde(rename = "observedValue")]
    pub observed: Value,
    pub threshold: Value,
}

/// The deployment-wide figures the checks, alerts and status page derive from.
#[derive(Debug, Clone, Default)]
pub struct Figures {
    pub due_backlog: i64,
    pub dead_letters_5m: i64,
    pub open_dead_letters: i64,
    pub live_workers: i64,
    pub stale_workers: Vec<WorkerId>,
    pub mismatched_workers: Vec<(WorkerId, String)>,
    pub overdue_scheduled: i64,
}

pub async fn figures(state: &AppState) -> DbResult<Figures> {
    let mut db = state.db.clone();
    let now = now_ms();
    let stale_ms = i64::try_from(state.config.alert_worker_stale.as_millis()).unwrap_or(30_000);
    let due_backlog = crate::jobs::queue::due_backlog(&state.db).await?;
    let dead_letters_5m: i64 =
        Q::read("SELECT COUNT(*) AS n FROM dead_letters WHERE created_at >= $1")
            .bind(now - 300_000)
            .fetch_scalar(&mut db)
            .await?;
    let open_dead_letters: i64 =
        Q::read("SELECT COUNT(*) AS n FROM dead_letters WHERE status = 'open'")
            .fetch_scalar(&mut db)
            .await?;
    let workers: Vec<(WorkerId, String, i64)> =
        Q::read("SELECT worker_id, build_id, last_seen FROM workers WHERE stopped_at IS NULL")
            .fetch_all(&mut db)
            .await?;
    let mut live_workers = 0;
    let mut stale_workers = Vec::new();
    let mut mismatched_workers = Vec::new();
    for (id, build, last_seen) in workers {
        if last_seen < now - stale_ms {
            stale_workers.push(id);
        } else {
            live_workers += 1;
            if build != state.config.build_id {
                mismatched_workers.push((id, build));
            }
        }
    }
    let overdue_scheduled: i64 = Q::read(
        "SELECT COUNT(*) AS n FROM scheduled_messages WHERE status = 'pending' AND send_at < $1",
    )
    .bind(now - 5_000)
    .fetch_scalar(&mut db)
    .await?;
    Ok(Figures {
        due_backlog,
        dead_letters_5m,
        open_dead_letters,
        live_workers,
        stale_workers,
        mismatched_workers,
        overdue_scheduled,
    })
}

/// The alerts these figures (and this instance's limiter) raise.
pub fn alerts_of(state: &AppState, f: Option<&Figures>) -> Vec<Alert> {
    let mut out = Vec::new();
    let c = &state.config;
    if let Some(f) = f {
        if f.dead_letters_5m >= i64::try_from(c.alert_dlq_spike).unwrap_or(i64::MAX) {
            out.push(Alert {
                name: AlertName::DlqSpike,
                severity: "warning",
                message: format!("{} dead letters in the last 5 minutes", f.dead_letters_5m),
                observed: json!(f.dead_letters_5m),
                threshold: json!(c.alert_dlq_spike),
            });
        }
        if f.due_backlog >= i64::try_from(c.alert_queue_backlog).unwrap_or(i64::MAX) {
            out.push(Alert {
                name: AlertName::QueueBacklog,
                severity: "warning",
                message: format!("{} jobs are due and waiting", f.due_backlog),
                observed: json!(f.due_backlog),
                threshold: json!(c.alert_queue_backlog),
            });
        }
        if !f.stale_workers.is_empty() {
            out.push(Alert {
                name: AlertName::WorkerStale,
                severity: "warning",
                message: format!(
                    "{} worker(s) silent for more than {} s",
                    f.stale_workers.len(),
                    c.alert_worker_stale.as_secs()
                ),
                observed: json!(f.stale_workers),
                threshold: json!(c.alert_worker_stale.as_secs()),
            });
        }
        if !f.mismatched_workers.is_empty() {
            out.push(Alert {
                name: AlertName::BuildMismatch,
                severity: "warning",
                message: format!(
                    "{} worker(s) run another build than this API ({})",
                    f.mismatched_workers.len(),
                    c.build_id
                ),
                observed: json!(
                    f.mismatched_workers
                        .iter()
                        .map(|(w, b)| json!({ "worker_id": w, "build_id": b }))
                        .collect::<Vec<_>>()
                ),
                threshold: json!(c.build_id),
            });
        }
    }
    if state.limiter.degraded_within(60_000) {
        out.push(Alert {
            name: AlertName::QuotaStoreDegraded,
            severity: "warning",
            message: "the shared limit store (Redis) is unreachable: rate limits are per instance and quotas fail open".into(),
            observed: json!(state.limiter.stats.quota_fail_opens.load(std::sync::atomic::Ordering::Relaxed)),
            threshold: json!(0),
        });
    }
    out
}

pub async fn collect(state: &AppState) -> (Status, Vec<Check>, Vec<Alert>) {
    let mut checks = Vec::new();
    let store = state.db.dialect().name();
    let t = Instant::now();
    let db_ok = state.db.ping().await.is_ok();
    checks.push(Check {
        key: format!("{store}:responseTime"),
        component_type: "datastore",
        value: json!(t.elapsed().as_secs_f64() * 1000.0),
        unit: "ms",
        status: if db_ok { Status::Pass } else { Status::Fail },
        output: (!db_ok).then(|| "unreachable".to_owned()),
    });
    let t = Instant::now();
    if let Some(ok) = state.limiter.ping_shared_store().await {
        checks.push(Check {
            key: "redis:responseTime".into(),
            component_type: "datastore",
            value: json!(t.elapsed().as_secs_f64() * 1000.0),
            unit: "ms",
            // Redis is an accelerator: its loss degrades, never fails, the service.
            status: if ok { Status::Pass } else { Status::Warn },
            output: (!ok).then(|| "unreachable; limits local, quotas fail open".to_owned()),
        });
    }
    let figures = if db_ok {
        figures(state).await.ok()
    } else {
        None
    };
    let alerts = alerts_of(state, figures.as_ref());
    let has = |n: AlertName| alerts.iter().any(|a| a.name == n);
    if let Some(f) = &figures {
        let mut push = |key: &str, value: Value, unit: &'static str, warn: bool| {
            checks.push(Check {
                key: key.into(),
                component_type: "component",
                value,
                unit,
                status: if warn { Status::Warn } else { Status::Pass },
                output: None,
            });
        };
        push(
            "jobs:backlog",
            json!(f.due_backlog),
            "jobs",
            has(AlertName::QueueBacklog),
        );
        push(
            "deadLetters:last5m",
            json!(f.dead_letters_5m),
            "dead letters",
            has(AlertName::DlqSpike),
        );
        push(
            "deadLetters:open",
            json!(f.open_dead_letters),
            "dead letters",
            false,
        );
        push("workers:live", json!(f.live_workers), "workers", false);
        push(
            "workers:stale",
            json!(f.stale_workers.len()),
            "workers",
            has(AlertName::WorkerStale),
        );
        push(
            "workers:buildMismatch",
            json!(f.mismatched_workers.len()),
            "workers",
            has(AlertName::BuildMismatch),
        );
        push(
            "scheduler:overdue",
            json!(f.overdue_scheduled),
            "scheduled messages",
            f.overdue_scheduled > 0,
        );
    }
    checks.push(Check {
        key: "quota:failOpens".into(),
        component_type: "component",
        value: json!(
            state
                .limiter
                .stats
                .quota_fail_opens
                .load(std::sync::atomic::Ordering::Relaxed)
        ),
        unit: "requests",
        status: if has(AlertName::QuotaStoreDegraded) {
            Status::Warn
        } else {
            Status::Pass
        },
        output: None,
    });
    let mut status = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Pass);
    if !alerts.is_empty() && status == Status::Pass {
        status = Status::Warn;
    }
    (status, checks, alerts)
}

pub async fn get_health_deep(State(state): State<AppState>) -> Response {
    let (status, checks, alerts) = collect(&state).await;
    let now = clock::rfc3339(now_ms());
    let mut map = Map::new();
    for c in checks {
        let mut entry = json!({
            "componentType": c.component_type,
            "observedValue": c.value,
            "observedUnit": c.unit,
            "status": c.status,
            "time": now,
        });
        if let Some(o) = c.output {
            entry["output"] = json!(o);
        }
        if let Some(a) = map
            .entry(c.key)
            .or_insert_with(|| Value::Array(Vec::new()))
            .as_array_mut()
        {
            a.push(entry);
        }
    }
    let body = json!({
        "status": status,
        "version": env!("CARGO_PKG_VERSION"),
        "releaseId": state.config.build_id,
        "serviceId": "rampart",
        "description": "Rampart deep health",
        "checks": map,
        "alerts": alerts,
    });
    let code = if status == Status::Fail {
        StatusCode::SERVICE_UNAVAILABLE
    } else {
        StatusCode::OK
    };
    let mut res = (code, serde_json::to_vec(&body).unwrap_or_default()).into_response();
    res.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/health+json"),
    );
    res
}
