//! Alert transitions: every instance evaluates the alerts on an interval; the `alert_state`
//! table decides which instance saw a start or an end first, and only that one announces it —
//! a structured warning in the log, and (when `RAMPART_OPS_WEBHOOK_URL` is set) a signed POST
//! sent through the job queue, so it is retried like any job.

use std::time::Duration;

use serde_json::json;

use super::deep_health::{Alert, AlertName, alerts_of, figures};
use crate::clock::{now_ms, rfc3339};
use crate::jobs::queue::{NewJob, complete, enqueue};
use crate::jobs::{Completion, Job, JobContext, JobKind};
use crate::state::AppState;
use crate::store::Q;

/// The state key of an alert: instance-level ones carry the instance id.
fn key(state: &AppState, name: AlertName) -> String {
    if name.is_per_instance() {
        format!("{name}@{}", state.instance_id)
    } else {
        name.as_str().to_owned()
    }
}

/// Evaluates once and announces transitions. Returns the active alerts.
pub async fn evaluate(state: &AppState) -> anyhow::Result<Vec<Alert>> {
    let read_at = now_ms();
    let f = figures(state).await?;
    let active = alerts_of(state, Some(&f));
    announce(state, &active, read_at).await?;
    Ok(active)
}

/// Records and announces the transitions `active` (from figures read at `read_at`) implies. A
/// transition counts only if the figures are newer than the last change: an instance that read
/// them before another instance announced the opposite must not flip it back.
pub async fn announce(state: &AppState, active: &[Alert], read_at: i64) -> anyhow::Result<()> {
    for &name in AlertName::ALL {
        let alert = active.iter().find(|a| a.name == name);
        let k = key(state, name);
        let now = now_ms();
        let on = alert.is_some();
        let message = alert.map(|a| a.message.clone());
        let mut tx = state.db.begin().await?;
        let inserted = Q::write("INSERT INTO alert_state (name, active, message, changed_at) VALUES ($1, $2, $3, $4) ON CONFLICT (name) DO NOTHING RETURNING name")
            .bind(&k)
            .bind(on)
            .bind(message.clone())
            .bind(now)
            .fetch_optional::<(String,)>(&mut tx)
            .await?
            .is_some();
        let changed = if inserted {
            on
        } else {
            Q::write("UPDATE alert_state SET active = $2, message = $3, changed_at = $4 WHERE name = $1 AND active <> $2 AND changed_at < $5")
                .bind(&k)
                .bind(on)
                .bind(message.clone())
                .bind(now)
                .bind(read_at)
                .execute(&mut tx)
                .await?
                == 1
        };
        if changed {
            match alert {
                Some(a) => {
                    tracing::warn!(alert = %a.name, alert.key = %k, alert.message = %a.message, observed = %a.observed, threshold = %a.threshold, "alert started")
                }
                None => tracing::info!(alert = %name, alert.key = %k, "alert ended"),
            }
            metrics::counter!("rampart_alert_transitions_total", "alert" => name.as_str(), "to" => if on { "active" } else { "resolved" }).increment(1);
            if state.config.ops_webhook_url.is_some() {
                let payload = json!({
                    "type": if on { "alert.started" } else { "alert.ended" },
                    "timestamp": rfc3339(now),
                    "data": {
                        "alert": name, "key": k, "message": message,
                        "observed": alert.map(|a| a.observed.clone()),
                        "threshold": alert.map(|a| a.threshold.clone()),
                        "release_id": state.config.build_id,
                    }
                });
                enqueue(&mut tx, NewJob::of::<NotifyOps>(None, &payload)?).await?;
            }
        }
        tx.commit().await?;
    }
    Ok(())
}

/// The per-instance watcher loop.
pub async fn watch(state: AppState) {
    let mut tick = tokio::time::interval(state.config.alert_interval);
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        if !state.is_ready() {
            continue;
        }
        if let Err(e) = evaluate(&state).await {
            tracing::debug!(error = %e, "alert evaluation failed");
        }
    }
}

/// The `alert.notify` job: one signed POST to the ops webhook, retried like any job.
pub struct NotifyOps;

impl JobKind for NotifyOps {
    const KIND: &'static str = "alert.notify";
    /// The Standard Webhooks body to send.
    type Payload = serde_json::Value;
}

impl Job for NotifyOps {
    type Kind = Self;

    async fn run(&self, cx: &JobContext<'_>, payload: serde_json::Value) -> anyhow::Result<()> {
        notify(cx, payload).await
    }
}

async fn notify(cx: &JobContext<'_>, payload: serde_json::Value) -> anyhow::Result<()> {
    let (state, job) = (cx.app, cx.job);
    let (Some(url), Some(secret)) = (
        &state.config.ops_webhook_url,
        &state.config.ops_webhook_secret,
    ) else {
        // Configuration changed since it was queued: nothing to do.
        complete(&state.db, job, &Completion::Done).await?;
        return Ok(());
    };
    let body = payload.to_string();
    let ts = now_ms() / 1000;
    let key = crate::webhooks::signing::secret_bytes(secret.expose())
        .unwrap_or_else(|| secret.expose().as_bytes().to_vec());
    let sig = crate::webhooks::signing::header(&[key], job.id.as_str(), ts, body.as_bytes());
    let res = state
        .ops_http
        .post(url)
        .header("content-type", "application/json")
        .header("webhook-id", job.id.as_str())
        .header("webhook-timestamp", ts.to_string())
        .header("webhook-signature", sig)
        .body(body)
        .timeout(Duration::from_secs(10))
        .send()
        .await?;
    anyhow::ensure!(
        res.status().is_success(),
        "the ops webhook answered {}",
        res.status()
    );
    complete(&state.db, job, &Completion::Done).await?;
    Ok(())
}
