//! What an attempt's outcome writes, always behind the job's lease fence: delivered attempts
//! (batched), failed ones (retry, dead letter, endpoint health), and deliveries that die
//! without an attempt.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::json;

use super::Attempting;
use super::store::{self, NewAttempt};
use crate::access::principal::{Actor, Tenant};
use crate::audit::{self, Entry, RequestMeta};
use crate::dead_letters::DeadLetterReason;
use crate::dead_letters::store::{Failure, open_for_delivery, reopen, resolve};
use crate::events::{self, EventType};
use crate::ids::{DeadLetterId, DeliveryId, EndpointId};
use crate::jobs::queue::begin_finish;
use crate::jobs::{ClaimedJob, Completion};
use crate::state::AppState;
use crate::store::{DbResult, Tx};
use crate::webhooks::{Endpoint, EndpointKind, EndpointStatus};

/// One delivered attempt, as recorded: see [`write_delivered`].
pub struct Delivered {
    pub job: ClaimedJob,
    pub delivery_id: DeliveryId,
    pub tenant: Tenant,
    pub endpoint_id: EndpointId,
    /// A channel endpoint: the delivery carries a message, now `sent`.
    pub channel: bool,
    /// The endpoint's failure counter was not 0 when the attempt began: reset it.
    pub reset_failures: bool,
    /// The delivery replays this dead letter: resolve it.
    pub dead_letter_id: Option<DeadLetterId>,
    pub attempt: i64,
    pub status: Option<u16>,
    pub latency_ms: i64,
    pub error_class: Option<&'static str>,
    pub note: Option<&'static str>,
    pub excerpt: Option<String>,
    pub request_id: String,
}

impl Delivered {
    pub(super) fn new(
        job: &ClaimedJob,
        d: &Attempting,
        ep: &Endpoint,
        status: Option<u16>,
        latency_ms: i64,
        request_id: String,
    ) -> Delivered {
        Delivered {
            job: job.clone(),
            delivery_id: d.delivery.id.clone(),
            tenant: d.tenant.clone(),
            endpoint_id: ep.id.clone(),
            channel: ep.kind == EndpointKind::Channel,
            // Read when the attempt began: a run of failures that settles while this attempt
            // is in flight is not reset by it, which is the order they finished in anyway.
            reset_failures: ep.consecutive_failures > 0,
            dead_letter_id: d.delivery.dead_letter_id.clone(),
            attempt: i64::from(job.attempts),
            status,
            latency_ms,
            error_class: None,
            note: None,
            excerpt: None,
            request_id,
        }
    }

    pub(super) fn with_excerpt(mut self, excerpt: Option<String>) -> Delivered {
        self.excerpt = excerpt;
        self
    }

    fn attempt(&self) -> NewAttempt<'_> {
        NewAttempt {
            delivery: &self.delivery_id,
            org: self.tenant.org(),
            environment: self.tenant.env(),
            endpoint: &self.endpoint_id,
            attempt: self.attempt,
            status_code: self.status.map(i64::from),
            latency_ms: self.latency_ms,
            error_class: self.error_class,
            error: self.note,
            excerpt: self.excerpt.as_deref(),
            request_id: &self.request_id,
        }
    }
}

/// Writes everything delivered attempts change, in `tx`: for each whose job's lease still holds,
/// the job done, the attempt logged, the delivery succeeded, the endpoint's failure run reset, a
/// replayed dead letter resolved, a channel message `sent`. Returns, per item, whether its lease
/// held (if not, nothing was written for it). A constant number of statements for any number
/// of ordinary deliveries; the worker batches them (see `super::batching`).
pub(crate) async fn write_delivered(tx: &mut Tx, items: &[&Delivered]) -> DbResult<Vec<bool>> {
    let jobs: Vec<&ClaimedJob> = items.iter().map(|d| &d.job).collect();
    // The fence: only items whose job is still leased as claimed go on.
    let done = crate::jobs::queue::finish_done_many(tx, &jobs).await?;
    let held: Vec<bool> = items.iter().map(|d| done.contains(&d.job.id)).collect();
    let live: Vec<&Delivered> = items
        .iter()
        .zip(&held)
        .filter(|(_, h)| **h)
        .map(|(d, _)| *d)
        .collect();
    if live.is_empty() {
        return Ok(held);
    }
    let attempts: Vec<NewAttempt<'_>> = live.iter().map(|d| d.attempt()).collect();
    store::log_attempts(tx, &attempts).await?;
    // Deliveries set alike in one statement (nearly always all of them: first attempt, 200).
    let mut alike: BTreeMap<(i64, Option<u16>), Vec<&DeliveryId>> = BTreeMap::new();
    for d in &live {
        alike
            .entry((d.attempt, d.status))
            .or_default()
            .push(&d.delivery_id);
    }
    for ((attempt, status), ids) in alike {
        store::mark_succeeded(tx, &ids, attempt, status.map(i64::from)).await?;
    }
    let reset: BTreeSet<&EndpointId> = live
        .iter()
        .filter(|d| d.reset_failures)
        .map(|d| &d.endpoint_id)
        .collect();
    if !reset.is_empty() {
        store::reset_failures(tx, &reset.into_iter().collect::<Vec<_>>()).await?;
    }
    for dl in live.iter().filter_map(|d| d.dead_letter_id.as_ref()) {
        resolve(tx, dl).await?;
    }
    // Channel messages, per tenant (their events belong to it).
    let mut sent: Vec<(Tenant, Vec<&DeliveryId>)> = Vec::new();
    for d in live.iter().filter(|d| d.channel) {
        match sent.iter_mut().find(|(t, _)| *t == d.tenant) {
            Some((_, ids)) => ids.push(&d.delivery_id),
            None => sent.push((d.tenant.clone(), vec![&d.delivery_id])),
        }
    }
    for (t, ids) in &sent {
        let fan_out = super::fanout::subscribers(tx, t).await?;
        crate::messages::settle::on_deliveries_sent(tx, t, fan_out, ids).await?;
    }
    Ok(held)
}

/// A test-mode attempt: recorded in the sandbox sink (and as delivered), never sent.
pub(super) async fn record_sandboxed(
    app: &AppState,
    job: &ClaimedJob,
    d: &Attempting,
    ep: &Endpoint,
    headers: &[(&'static str, String)],
    body: &[u8],
    request_id: String,
) -> anyhow::Result<()> {
    let mut tx = app.db.begin().await?;
    let delivered = Delivered {
        error_class: Some(super::SANDBOX),
        note: Some("test mode: recorded, not sent"),
        ..Delivered::new(job, d, ep, None, 0, request_id)
    };
    if write_delivered(&mut tx, &[&delivered]).await? != [true] {
        tx.rollback().await?;
        return Ok(());
    }
    let headers: BTreeMap<&str, &str> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
    crate::sandbox::store::record(
        &mut tx,
        &d.tenant,
        (&ep.id, &ep.url),
        &d.delivery.id,
        &d.delivery.event,
        &serde_json::to_value(headers)?,
        &crate::store::foreign_text::storable(body),
    )
    .await?;
    tx.commit().await?;
    Ok(())
}

/// What happens after a failed attempt, decided before the transaction that records it.
pub(super) enum Next {
    Gone,
    Retry(i64),
    Exhausted,
}

/// A failed attempt, as logged.
pub(super) struct Failed {
    pub attempt: i64,
    pub status: Option<i64>,
    pub latency_ms: i64,
    pub error_class: Option<&'static str>,
    pub error: Option<String>,
    pub excerpt: Option<String>,
    pub request_id: String,
}

/// Records a failed attempt and what follows from it, in the job's fenced transaction.
pub(super) async fn record_failed(
    app: &AppState,
    job: &ClaimedJob,
    d: &Attempting,
    ep: &Endpoint,
    f: Failed,
    next: Next,
) -> anyhow::Result<()> {
    let completion = match next {
        Next::Retry(at_ms) => Completion::Retry {
            at_ms,
            error: f.error.clone().unwrap_or_default(),
        },
        _ => Completion::Done,
    };
    let Some(mut tx) = begin_finish(&app.db, job, &completion).await? else {
        tracing::warn!(delivery = %d.delivery.id, "lease lost during the attempt; its outcome is discarded");
        return Ok(());
    };
    let attempt = NewAttempt {
        delivery: &d.delivery.id,
        org: d.tenant.org(),
        environment: d.tenant.env(),
        endpoint: &ep.id,
        attempt: f.attempt,
        status_code: f.status,
        latency_ms: f.latency_ms,
        error_class: f.error_class,
        error: f.error.as_deref(),
        excerpt: f.excerpt.as_deref(),
        request_id: &f.request_id,
    };
    store::log_attempts(&mut tx, &[attempt]).await?;
    let error = f.error.as_deref();
    match next {
        Next::Gone => {
            let why = "the endpoint answered 410 Gone";
            disable_endpoint(&mut tx, &d.tenant, ep, EndpointStatus::Disabled, why).await?;
            let failure = Failure {
                reason: DeadLetterReason::EndpointDisabled,
                attempts: f.attempt,
                last_error: error,
            };
            dead_letter(&mut tx, d, ep, &failure).await?;
        }
        Next::Retry(at) => {
            store::schedule_retry(&mut tx, &d.delivery.id, f.attempt, at, f.status, error).await?;
        }
        Next::Exhausted => {
            let failure = Failure {
                reason: DeadLetterReason::RetriesExhausted,
                attempts: f.attempt,
                last_error: error,
            };
            dead_letter(&mut tx, d, ep, &failure).await?;
            let failures = crate::webhooks::store::count_failure(&mut tx, &ep.id).await?;
            if failures >= i64::from(app.config.endpoint_failure_threshold)
                && ep.status == EndpointStatus::Active
            {
                let why = format!("{failures} deliveries in a row exhausted their retry budget");
                disable_endpoint(&mut tx, &d.tenant, ep, EndpointStatus::Failed, &why).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

/// Only deliveries to a channel endpoint carry messages.
async fn settle_message(tx: &mut Tx, d: &Attempting, ep: &Endpoint, ok: bool) -> DbResult<()> {
    if ep.kind != EndpointKind::Channel {
        return Ok(());
    }
    let fan_out = super::fanout::subscribers(tx, &d.tenant).await?;
    crate::messages::settle::on_delivery_settled(tx, &d.tenant, fan_out, &d.delivery.id, ok).await
}

/// Settles a delivery as dead: a dead letter (or, for a replay, its dead letter reopened).
async fn dead_letter(tx: &mut Tx, d: &Attempting, ep: &Endpoint, f: &Failure<'_>) -> DbResult<()> {
    store::mark_dead(tx, &d.delivery.id, Some(f.attempts), f.last_error).await?;
    match &d.delivery.dead_letter_id {
        Some(dl) => reopen(tx, dl, f).await?,
        None => {
            let target = (&d.delivery.id, &ep.id);
            open_for_delivery(tx, &d.tenant, target, &d.delivery.event, f).await?;
        }
    }
    settle_message(tx, d, ep, false).await
}

/// Turns an endpoint `failed` or `disabled`, audits it and announces `endpoint.failed`.
async fn disable_endpoint(
    tx: &mut Tx,
    t: &Tenant,
    ep: &Endpoint,
    status: EndpointStatus,
    why: &str,
) -> DbResult<()> {
    if !crate::webhooks::store::set_status(tx, t, &ep.id, status, why).await? {
        return Ok(());
    }
    tracing::warn!(endpoint = %ep.id, status = %status, reason = why, "webhook endpoint stopped");
    audit::record(
        tx,
        &RequestMeta::system(),
        Entry::new(Some(t.org()), Actor::System, "webhook_endpoint.failed")
            .target("webhook_endpoint", ep.id.as_str())
            .details(json!({ "status": status, "reason": why })),
    )
    .await?;
    let fan_out = super::fanout::subscribers(tx, t).await?;
    let data = json!({ "id": ep.id, "url": ep.url, "status": status, "reason": why });
    events::emit(tx, t, fan_out, EventType::EndpointFailed, data).await?;
    Ok(())
}

/// How a delivery dies without an attempt.
pub(super) struct Dead {
    reason: DeadLetterReason,
    /// Kept as a dead letter (replayable), or only marked dead (its endpoint is gone).
    keep: bool,
    error: Option<&'static str>,
}

impl Dead {
    /// Marked dead, no dead letter: there is nothing to replay it to.
    pub fn quietly(reason: DeadLetterReason) -> Dead {
        Dead {
            reason,
            keep: false,
            error: None,
        }
    }

    /// A dead letter with `error`.
    pub fn kept(reason: DeadLetterReason, error: &'static str) -> Dead {
        Dead {
            reason,
            keep: true,
            error: Some(error),
        }
    }

    /// A dead letter with no error of its own.
    pub fn kept_silently(reason: DeadLetterReason) -> Dead {
        Dead {
            reason,
            keep: true,
            error: None,
        }
    }
}

pub(super) async fn settle_dead(
    app: &AppState,
    job: &ClaimedJob,
    d: &Attempting,
    ep: &Endpoint,
    dead: Dead,
) -> anyhow::Result<()> {
    let Some(mut tx) = begin_finish(&app.db, job, &Completion::Done).await? else {
        return Ok(());
    };
    if dead.keep {
        let failure = Failure {
            reason: dead.reason,
            attempts: i64::from(job.attempts) - 1,
            last_error: dead.error,
        };
        dead_letter(&mut tx, d, ep, &failure).await?;
    } else {
        let reason = dead.reason.as_str();
        store::mark_dead(&mut tx, &d.delivery.id, None, Some(reason)).await?;
        settle_message(&mut tx, d, ep, false).await?;
    }
    tx.commit().await?;
    Ok(())
}
