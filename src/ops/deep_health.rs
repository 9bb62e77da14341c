//! `GET /health/deep`: `application/health+json` as the IETF health-check draft shapes it.

use std::time::Instant;

use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::app::AppState;
use crate::clock;

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

pub async fn collect(state: &AppState) -> (Status, Vec<Check>, Vec<Value>) {
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
    let mut alerts: Vec<Value> = Vec::new();
    if let Some(redis) = state.limiter.redis() {
        let t = Instant::now();
        let ok = redis.ping().await;
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
    let stats = &state.limiter.stats;
    checks.push(Check {
        key: "quota:failOpens".into(),
        component_type: "component",
        value: json!(
            stats
                .quota_fail_opens
                .load(std::sync::atomic::Ordering::Relaxed)
        ),
        unit: "requests",
        status: Status::Pass,
        output: None,
    });
    if state.limiter.degraded_within(60_000) {
        alerts.push(json!({
            "name": "quota_store_degraded",
            "severity": "warning",
            "message": "the shared limit store (Redis) is unreachable: rate limits are per instance and quotas fail open",
            "observedValue": stats.quota_fail_opens.load(std::sync::atomic::Ordering::Relaxed),
        }));
    }
    let status = checks
        .iter()
        .map(|c| c.status)
        .max()
        .unwrap_or(Status::Pass);
    (status, checks, alerts)
}

pub async fn get_health_deep(State(state): State<AppState>) -> Response {
    let (status, checks, alerts) = collect(&state).await;
    let now = clock::rfc3339(clock::now_ms());
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
