//! The `webhook.deliver` job: one attempt of one delivery, and everything that follows from its
//! outcome, written in the job's fenced transaction (attempt log, retry schedule, dead letter,
//! endpoint health) so that a worker that lost its lease changes nothing.

use super::batching::DeliveryBatches;
use super::outcome::{self, Delivered, Failed};
use super::store::Work;
use super::{Attempting, Deliver, DeliverPayload, DeliveryStatus};
use crate::access::principal::Tenant;
use crate::clock::now_ms;
use crate::dead_letters::DeadLetterReason;
use crate::jobs::queue::complete;
use crate::jobs::retry::{Policy, parse_retry_after};
use crate::jobs::{ClaimedJob, Completion, Job, JobContext};
use crate::state::AppState;
use crate::store::Db;
use crate::traffic::limits::{Limit, LimitKind};
use crate::webhooks::{Endpoint, EndpointKind, EndpointStatus, signing};

/// How long a paused endpoint's deliveries wait before looking again.
const PAUSED_RECHECK_MS: i64 = 5_000;

/// The delivery job, with the batchers its attempts share.
pub struct DeliverJob {
    batches: DeliveryBatches,
}

impl DeliverJob {
    /// Starts the batching tasks (needs a Tokio runtime).
    pub fn start(db: &Db) -> DeliverJob {
        DeliverJob {
            batches: DeliveryBatches::start(db),
        }
    }
}

impl Job for DeliverJob {
    type Kind = Deliver;

    async fn run(&self, cx: &JobContext<'_>, p: DeliverPayload) -> anyhow::Result<()> {
        let (app, job) = (cx.app, cx.job);
        let Some(Work {
            delivery,
            endpoint: ep,
            endpoint_deleted,
            subscription,
        }) = self.batches.load.call(p.delivery_id).await?
        else {
            complete(&app.db, job, &Completion::Done).await?;
            return Ok(());
        };
        if delivery.status != DeliveryStatus::Pending {
            // Already settled (a duplicate run after a takeover): nothing to do.
            complete(&app.db, job, &Completion::Done).await?;
            return Ok(());
        }
        let d = Attempting {
            tenant: Tenant::for_background(
                delivery.org.clone(),
                delivery.environment,
                cx.background,
            ),
            delivery,
        };
        if endpoint_deleted {
            let dead = outcome::Dead::quietly(DeadLetterReason::EndpointDeleted);
            return outcome::settle_dead(app, job, &d, &ep, dead).await;
        }
        if ep.kind == EndpointKind::Channel
            && let Err(r) = crate::billing::billable(&app.config, subscription)
        {
            // Sending is billable: checked again now, not only when the message was accepted.
            let dead = outcome::Dead::kept(r.into(), "the org's subscription is not active");
            return outcome::settle_dead(app, job, &d, &ep, dead).await;
        }
        match ep.status {
            EndpointStatus::Paused => return defer(app, job, now_ms() + PAUSED_RECHECK_MS).await,
            EndpointStatus::Failed => {
                let dead = outcome::Dead::kept_silently(DeadLetterReason::EndpointFailed);
                return outcome::settle_dead(app, job, &d, &ep, dead).await;
            }
            EndpointStatus::Disabled => {
                let dead = outcome::Dead::kept_silently(DeadLetterReason::EndpointDisabled);
                return outcome::settle_dead(app, job, &d, &ep, dead).await;
            }
            EndpointStatus::Active => {}
        }
        if let Some(rate) = ep.rate_limit {
            let decision = app
                .limiter
                .check(
                    &[Limit {
                        name: "endpoint",
                        id: format!("ep:{}", ep.id).into(),
                        rate: crate::config::Rate::per_second(u32::try_from(rate).unwrap_or(1)),
                        kind: LimitKind::Rate,
                    }],
                    now_ms(),
                )
                .await;
            if let Some(o) = decision.refusal() {
                // Not an attempt: wait exactly until the endpoint's limit admits one.
                let wait = i64::try_from(o.retry_after_ms.max(1)).unwrap_or(1000);
                return defer(app, job, now_ms() + wait.min(1000)).await;
            }
        }
        self.attempt(app, job, &d, &ep).await
    }
}

/// The Standard Webhooks request: headers and body.
pub(crate) fn build_request(
    app: &AppState,
    ep: &Endpoint,
    event: &crate::events::Event,
    request_id: &str,
) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let body = event.payload.to_string().into_bytes();
    let now = now_ms();
    let ts = now / 1000;
    let secrets = ep.signing_secrets(&app.keys, now);
    let headers = vec![
        ("content-type", "application/json".to_owned()),
        ("webhook-id", event.id.to_string()),
        ("webhook-timestamp", ts.to_string()),
        (
            "webhook-signature",
            signing::header(&secrets, event.id.as_str(), ts, &body),
        ),
        ("x-request-id", request_id.to_owned()),
    ];
    (headers, body)
}

impl DeliverJob {
    async fn attempt(
        &self,
        app: &AppState,
        job: &ClaimedJob,
        d: &Attempting,
        ep: &Endpoint,
    ) -> anyhow::Result<()> {
        let request_id = uuid::Uuid::now_v7().to_string();
        let (headers, body) = build_request(app, ep, &d.delivery.event, &request_id);
        let n = i64::from(job.attempts);

        if !d.tenant.env().is_live() {
            // Test mode: recorded in the sandbox sink, never sent.
            return outcome::record_sandboxed(app, job, d, ep, &headers, &body, request_id).await;
        }

        let header_refs: Vec<(&str, String)> =
            headers.iter().map(|(k, v)| (*k, v.clone())).collect();
        let result = app.webhooks.post(&ep.url, &header_refs, body).await;
        let latency_ms = i64::try_from(result.latency.as_millis()).unwrap_or(i64::MAX);
        metrics::histogram!("rampart_webhook_attempt_duration_seconds")
            .record(result.latency.as_secs_f64());
        let outcome_label = if result.succeeded() {
            "succeeded"
        } else {
            result.error_class.unwrap_or("error")
        };
        metrics::counter!("rampart_webhook_attempts_total", "outcome" => outcome_label)
            .increment(1);

        if result.succeeded() {
            // The hot path: recorded with other deliveries' in one transaction.
            let delivered = Delivered::new(job, d, ep, result.status, latency_ms, request_id)
                .with_excerpt(result.excerpt.clone());
            if !self.batches.record.call(delivered).await? {
                tracing::warn!(delivery = %d.delivery.id, "lease lost during the attempt; its outcome is discarded");
            }
            return Ok(());
        }

        let next = if result.status == Some(410) {
            // The receiver says the endpoint is gone for good: stop at once.
            outcome::Next::Gone
        } else if n <= ep.max_retries {
            let policy = Policy {
                base: app.config.retry_base_delay,
                max: app.config.retry_max_delay,
            };
            let delay = Policy::with_retry_after(
                policy.next_delay(job.attempts),
                result
                    .retry_after
                    .as_deref()
                    .and_then(|v| parse_retry_after(v, now_ms())),
            );
            outcome::Next::Retry(
                now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2),
            )
        } else {
            outcome::Next::Exhausted
        };
        let failed = Failed {
            attempt: n,
            status: result.status.map(i64::from),
            latency_ms,
            error_class: result.error_class,
            error: result.error.clone(),
            excerpt: result.excerpt.clone(),
            request_id,
        };
        outcome::record_failed(app, job, d, ep, failed, next).await
    }
}

async fn defer(app: &AppState, job: &ClaimedJob, at_ms: i64) -> anyhow::Result<()> {
    complete(&app.db, job, &Completion::Defer { at_ms }).await?;
    Ok(())
}
