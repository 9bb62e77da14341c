//! The `webhook.deliver` job: one attempt of one delivery, and everything that follows from its
//! outcome, written in the job's fenced transaction (attempt log, retry schedule, dead letter,
//! endpoint health) so that a worker that lost its lease changes nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::json;

use super::endpoints::{self, Endpoint};
use super::signing;
use crate::access::principal::{Actor, Environment, Tenant};
use crate::app::AppState;
use crate::audit::{self, Entry, RequestMeta};
use crate::clock::now_ms;
use crate::events::Event;
use crate::ids::{OrgId, new_id};
use crate::jobs::queue::{begin_finish, complete, truncate};
use crate::jobs::retry::{Policy, parse_retry_after};
use crate::jobs::{ClaimedJob, Completion};
use crate::orgs::Subscription;
use crate::store::{Arg, Db, DbResult, Row, Tx, insert_many_deferred, placeholders, sql};
use crate::traffic::limits::{Limit, LimitKind};

/// How long a paused endpoint's deliveries wait before looking again.
const PAUSED_RECHECK_MS: i64 = 5_000;

/// The delivery being attempted.
pub(crate) struct Loaded {
    pub id: String,
    pub tenant: Tenant,
    pub event: Event,
    pub status: String,
    pub dead_letter_id: Option<String>,
}

/// What one attempt needs, read in one query: the delivery and its event, its endpoint (even
/// if deleted since; `None` if unknown) and the org's subscription (for the billing rule).
pub struct Work {
    d: Loaded,
    endpoint: Option<(Endpoint, bool)>,
    subscription: Option<Subscription>,
}

/// Loads the work of each delivery in `ids` in one query; `None` for an unknown id. Answers in
/// the order of `ids`.
pub(crate) async fn load_many(db: &Db, ids: &[String]) -> DbResult<Vec<Option<Work>>> {
    let endpoint_columns = endpoints::COLUMNS
        .split(", ")
        .map(|c| format!("w.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let mut q = crate::store::sql_built(format!(
        "SELECT d.id AS d_id, d.org_id AS d_org_id, d.environment AS d_environment,
                d.event_id AS d_event_id, d.event_type AS d_event_type, d.status AS d_status,
                d.dead_letter_id AS d_dead_letter_id, e.payload AS e_payload,
                {endpoint_columns}, w.deleted_at AS w_deleted_at, s.status AS s_status, s.tier AS s_tier
         FROM deliveries d
         JOIN events e ON e.id = d.event_id
         LEFT JOIN webhook_endpoints w ON w.id = d.endpoint_id AND w.org_id = d.org_id
         LEFT JOIN subscriptions s ON s.org_id = d.org_id
         WHERE d.id IN ({})",
        placeholders(1, ids.len())
    ));
    for id in ids {
        q = q.bind(id);
    }
    let mut found: HashMap<String, Work> = HashMap::with_capacity(ids.len());
    for r in q.fetch_all(&mut db.clone()).await? {
        let work = work_from_row(&r)?;
        found.insert(work.d.id.clone(), work);
    }
    Ok(ids.iter().map(|id| found.remove(id)).collect())
}

fn work_from_row(r: &Row) -> DbResult<Work> {
    let env = Environment::parse(&r.get::<String>("d_environment")?).unwrap_or(Environment::Test);
    let d = Loaded {
        id: r.get("d_id")?,
        tenant: Tenant::for_background(OrgId::from_trusted(r.get("d_org_id")?), env),
        event: Event {
            id: r.get("d_event_id")?,
            event_type: r.get("d_event_type")?,
            payload: r.json("e_payload")?,
        },
        status: r.get("d_status")?,
        dead_letter_id: r.get("d_dead_letter_id")?,
    };
    let endpoint = match r.get::<Option<String>>("id")? {
        Some(_) => Some((
            Endpoint::from_row(r)?,
            r.get::<Option<i64>>("w_deleted_at")?.is_some(),
        )),
        None => None,
    };
    let subscription = match (
        r.get::<Option<String>>("s_status")?,
        r.get::<Option<String>>("s_tier")?,
    ) {
        (Some(status), Some(tier)) => Subscription::parse(&status, &tier),
        _ => None,
    };
    Ok(Work {
        d,
        endpoint,
        subscription,
    })
}

pub async fn run(app: &AppState, job: &ClaimedJob) -> anyhow::Result<()> {
    let delivery_id = job.payload["delivery_id"]
        .as_str()
        .ok_or_else(|| anyhow::anyhow!("job payload has no delivery_id"))?;
    let Some(Work {
        d,
        endpoint,
        subscription,
    }) = app
        .delivery_batches
        .load
        .call(delivery_id.to_owned())
        .await?
    else {
        complete(&app.db, job, &Completion::Done).await?;
        return Ok(());
    };
    if d.status != "pending" {
        // Already settled (a duplicate run after a takeover): nothing to do.
        complete(&app.db, job, &Completion::Done).await?;
        return Ok(());
    }
    let Some((ep, deleted)) = endpoint else {
        anyhow::bail!("delivery {} names an unknown endpoint", d.id);
    };
    if deleted {
        return settle_dead(app, job, &d, &ep, "endpoint_deleted", None, false).await;
    }
    if ep.kind == "channel"
        && let Err(r) = crate::traffic::billing::billable(&app.config, subscription)
    {
        // Sending is billable: checked again now, not only when the message was accepted.
        return settle_dead(
            app,
            job,
            &d,
            &ep,
            r.code(),
            Some("the org's subscription is not active"),
            true,
        )
        .await;
    }
    match ep.status.as_str() {
        "paused" => return defer(app, job, now_ms() + PAUSED_RECHECK_MS).await,
        "failed" => return settle_dead(app, job, &d, &ep, "endpoint_failed", None, true).await,
        "disabled" => return settle_dead(app, job, &d, &ep, "endpoint_disabled", None, true).await,
        _ => {}
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
    attempt(app, job, &d, &ep).await
}

/// The Standard Webhooks request: headers and body.
pub(crate) fn build_request(
    app: &AppState,
    ep: &Endpoint,
    event: &Event,
    request_id: &str,
) -> (Vec<(&'static str, String)>, Vec<u8>) {
    let body = event.payload.to_string().into_bytes();
    let now = now_ms();
    let ts = now / 1000;
    let secrets = ep.signing_secrets(&app.keys, now);
    let headers = vec![
        ("content-type", "application/json".to_owned()),
        ("webhook-id", event.id.clone()),
        ("webhook-timestamp", ts.to_string()),
        (
            "webhook-signature",
            signing::header(&secrets, &event.id, ts, &body),
        ),
        ("x-request-id", request_id.to_owned()),
    ];
    (headers, body)
}

async fn attempt(
    app: &AppState,
    job: &ClaimedJob,
    d: &Loaded,
    ep: &Endpoint,
) -> anyhow::Result<()> {
    let request_id = uuid::Uuid::now_v7().to_string();
    let (headers, body) = build_request(app, ep, &d.event, &request_id);
    let n = i64::from(job.attempts);

    if !d.tenant.env().is_live() {
        // Test mode: recorded in the sandbox sink, never sent.
        let mut tx = app.db.begin().await?;
        let delivered = Delivered {
            error_class: Some("sandbox"),
            note: Some("test mode: recorded, not sent"),
            ..delivered(job, d, ep, None, 0, None, request_id.clone())
        };
        if write_delivered(&mut tx, &[&delivered]).await? != [true] {
            tx.rollback().await?;
            return Ok(());
        }
        sql("INSERT INTO sandbox_deliveries (id, org_id, endpoint_id, delivery_id, event_id, event_type, url, headers, payload, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)")
            .bind(new_id("sbx"))
            .bind(d.tenant.org())
            .bind(&ep.id)
            .bind(&d.id)
            .bind(&d.event.id)
            .bind(&d.event.event_type)
            .bind(&ep.url)
            .bind(serde_json::to_string(&headers.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<std::collections::BTreeMap<_, _>>())?)
            .bind(String::from_utf8_lossy(&body).into_owned())
            .bind(now_ms())
            .execute(&mut tx)
            .await?;
        tx.commit().await?;
        return Ok(());
    }

    let header_refs: Vec<(&str, String)> = headers.iter().map(|(k, v)| (*k, v.clone())).collect();
    let result = app.webhooks.post(&ep.url, &header_refs, body).await;
    let latency_ms = i64::try_from(result.latency.as_millis()).unwrap_or(i64::MAX);
    metrics::histogram!("rampart_webhook_attempt_duration_seconds")
        .record(result.latency.as_secs_f64());
    let outcome = if result.succeeded() {
        "succeeded"
    } else {
        result.error_class.unwrap_or("error")
    };
    metrics::counter!("rampart_webhook_attempts_total", "outcome" => outcome).increment(1);

    if result.succeeded() {
        // The hot path: recorded with other deliveries' in one transaction.
        let delivered = delivered(
            job,
            d,
            ep,
            result.status,
            latency_ms,
            result.excerpt.clone(),
            request_id,
        );
        if !app.delivery_batches.record.call(delivered).await? {
            tracing::warn!(delivery = %d.id, "lease lost during the attempt; its outcome is discarded");
        }
        return Ok(());
    }

    // What happens after a failed attempt, decided before the transaction that records it.
    enum Next {
        Gone,
        Retry(i64),
        Exhausted,
    }
    let next = if result.status == Some(410) {
        // The receiver says the endpoint is gone for good: stop at once.
        Next::Gone
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
        Next::Retry(now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX / 2))
    } else {
        Next::Exhausted
    };
    let completion = match next {
        Next::Retry(at_ms) => Completion::Retry {
            at_ms,
            error: result.error.clone().unwrap_or_default(),
        },
        _ => Completion::Done,
    };
    let Some(mut tx) = begin_finish(&app.db, job, &completion).await? else {
        tracing::warn!(delivery = %d.id, "lease lost during the attempt; its outcome is discarded");
        return Ok(());
    };
    log_attempt(
        &mut tx,
        (&d.id, d.tenant.org()),
        &ep.id,
        n,
        result.status.map(i64::from),
        latency_ms,
        result.error_class,
        result.error.as_deref(),
        result.excerpt.as_deref(),
        &request_id,
    )
    .await?;
    match next {
        Next::Gone => {
            disable_endpoint(
                &mut tx,
                &d.tenant,
                ep,
                "disabled",
                "the endpoint answered 410 Gone",
            )
            .await?;
            dead_letter(
                &mut tx,
                d,
                ep,
                "endpoint_disabled",
                n,
                result.error.as_deref(),
            )
            .await?;
        }
        Next::Retry(at) => {
            sql("UPDATE deliveries SET attempts = $2, next_attempt_at = $3, last_status_code = $4, last_error = $5, updated_at = $6 WHERE id = $1")
                .bind(&d.id)
                .bind(n)
                .bind(at)
                .bind(result.status.map(i64::from))
                .bind(result.error.clone())
                .bind(now_ms())
                .execute(&mut tx)
                .await?;
        }
        Next::Exhausted => {
            dead_letter(
                &mut tx,
                d,
                ep,
                "retries_exhausted",
                n,
                result.error.as_deref(),
            )
            .await?;
            let failures: i64 = sql("UPDATE webhook_endpoints SET consecutive_failures = consecutive_failures + 1 WHERE id = $1 RETURNING consecutive_failures")
                .bind(&ep.id)
                .fetch_one(&mut tx)
                .await?
                .get("consecutive_failures")?;
            if failures >= i64::from(app.config.endpoint_failure_threshold) && ep.status == "active"
            {
                let why = format!("{failures} deliveries in a row exhausted their retry budget");
                disable_endpoint(&mut tx, &d.tenant, ep, "failed", &why).await?;
            }
        }
    }
    tx.commit().await?;
    Ok(())
}

fn delivered(
    job: &ClaimedJob,
    d: &Loaded,
    ep: &Endpoint,
    status: Option<u16>,
    latency_ms: i64,
    excerpt: Option<String>,
    request_id: String,
) -> Delivered {
    Delivered {
        job: job.clone(),
        delivery_id: d.id.clone(),
        tenant: d.tenant.clone(),
        endpoint_id: ep.id.clone(),
        channel: ep.kind == "channel",
        // Read when the attempt began: a run of failures that settles while this attempt is in
        // flight is not reset by it, which is the order they finished in anyway.
        reset_failures: ep.consecutive_failures > 0,
        dead_letter_id: d.dead_letter_id.clone(),
        attempt: i64::from(job.attempts),
        status,
        latency_ms,
        error_class: None,
        note: None,
        excerpt,
        request_id,
    }
}

#[allow(clippy::too_many_arguments)]
async fn log_attempt(
    tx: &mut Tx,
    d: (&str, &OrgId),
    endpoint_id: &str,
    attempt: i64,
    status_code: Option<i64>,
    latency_ms: i64,
    error_class: Option<&str>,
    error: Option<&str>,
    excerpt: Option<&str>,
    request_id: &str,
) -> DbResult<()> {
    sql("INSERT INTO delivery_attempts (id, delivery_id, org_id, endpoint_id, attempt, status_code, latency_ms, error_class, error, response_excerpt, request_id, created_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)")
        .bind(new_id("att"))
        .bind(d.0)
        .bind(d.1)
        .bind(endpoint_id)
        .bind(attempt)
        .bind(status_code)
        .bind(latency_ms)
        .bind(error_class.map(str::to_owned))
        .bind(error.map(|e| truncate(e, 1000)))
        .bind(excerpt.map(|e| truncate(e, super::client::EXCERPT_LIMIT)))
        .bind(request_id)
        .bind(now_ms())
        .execute(tx)
        .await?;
    Ok(())
}

/// One delivered attempt, as recorded: see [`write_delivered`].
pub struct Delivered {
    pub job: ClaimedJob,
    pub delivery_id: String,
    pub tenant: Tenant,
    pub endpoint_id: String,
    /// A channel endpoint: the delivery carries a message, now `sent`.
    pub channel: bool,
    /// The endpoint's failure counter was not 0 when the attempt began: reset it.
    pub reset_failures: bool,
    /// The delivery replays this dead letter: resolve it.
    pub dead_letter_id: Option<String>,
    pub attempt: i64,
    pub status: Option<u16>,
    pub latency_ms: i64,
    pub error_class: Option<&'static str>,
    pub note: Option<&'static str>,
    pub excerpt: Option<String>,
    pub request_id: String,
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
    let now = now_ms();
    let attempts = live
        .iter()
        .map(|d| {
            vec![
                Arg::from(new_id("att")),
                Arg::from(&d.delivery_id),
                Arg::from(d.tenant.org().to_string()),
                Arg::from(&d.endpoint_id),
                Arg::from(d.attempt),
                Arg::from(d.status.map(i64::from)),
                Arg::from(d.latency_ms),
                Arg::from(d.error_class.map(str::to_owned)),
                Arg::from(d.note.map(str::to_owned)),
                Arg::from(
                    d.excerpt
                        .as_deref()
                        .map(|e| truncate(e, super::client::EXCERPT_LIMIT)),
                ),
                Arg::from(&d.request_id),
                Arg::from(now),
            ]
        })
        .collect();
    insert_many_deferred(
        tx,
        "INSERT INTO delivery_attempts (id, delivery_id, org_id, endpoint_id, attempt, status_code, latency_ms, error_class, error, response_excerpt, request_id, created_at)",
        "",
        attempts,
    )
    .await?;
    // Deliveries set alike in one statement (nearly always all of them: first attempt, 200).
    let mut alike: BTreeMap<(i64, Option<u16>), Vec<&str>> = BTreeMap::new();
    for d in &live {
        alike
            .entry((d.attempt, d.status))
            .or_default()
            .push(&d.delivery_id);
    }
    for ((attempt, status), ids) in alike {
        let mut q = crate::store::sql_built(format!(
            "UPDATE deliveries SET status = 'succeeded', attempts = $1, last_status_code = $2, last_error = NULL, next_attempt_at = NULL, updated_at = $3
             WHERE id IN ({})",
            placeholders(4, ids.len())
        ))
        .bind(attempt)
        .bind(status.map(i64::from))
        .bind(now);
        for id in ids {
            q = q.bind(id);
        }
        tx.defer(q).await?;
    }
    let reset: BTreeSet<&str> = live
        .iter()
        .filter(|d| d.reset_failures)
        .map(|d| d.endpoint_id.as_str())
        .collect();
    if !reset.is_empty() {
        let mut q = crate::store::sql_built(format!(
            "UPDATE webhook_endpoints SET consecutive_failures = 0 WHERE id IN ({})",
            placeholders(1, reset.len())
        ));
        for id in reset {
            q = q.bind(id);
        }
        tx.defer(q).await?;
    }
    for dl in live.iter().filter_map(|d| d.dead_letter_id.as_ref()) {
        super::dead_letters::resolve(tx, dl).await?;
    }
    // Channel messages, per tenant (their events belong to it).
    let mut sent: BTreeMap<(String, &'static str), (Tenant, Vec<&str>)> = BTreeMap::new();
    for d in live.iter().filter(|d| d.channel) {
        sent.entry((d.tenant.org().to_string(), d.tenant.env().as_str()))
            .or_insert_with(|| (d.tenant.clone(), Vec::new()))
            .1
            .push(&d.delivery_id);
    }
    for (t, ids) in sent.values() {
        crate::messages::on_deliveries_sent(tx, t, ids).await?;
    }
    Ok(held)
}

/// Only deliveries to a channel endpoint carry messages.
async fn settle_message(tx: &mut Tx, d: &Loaded, ep: &Endpoint, ok: bool) -> DbResult<()> {
    if ep.kind != "channel" {
        return Ok(());
    }
    crate::messages::on_delivery_settled(tx, &d.tenant, &d.id, ok).await
}

/// Settles a delivery as dead: a dead letter (or, for a replay, its dead letter reopened).
async fn dead_letter(
    tx: &mut Tx,
    d: &Loaded,
    ep: &Endpoint,
    reason: &str,
    attempts: i64,
    error: Option<&str>,
) -> DbResult<()> {
    sql("UPDATE deliveries SET status = 'dead', attempts = $2, last_error = $3, next_attempt_at = NULL, updated_at = $4 WHERE id = $1")
        .bind(&d.id)
        .bind(attempts)
        .bind(error.map(str::to_owned))
        .bind(now_ms())
        .execute(tx)
        .await?;
    match &d.dead_letter_id {
        Some(dl) => super::dead_letters::reopen(tx, dl, reason, attempts, error).await?,
        None => {
            super::dead_letters::open_for_delivery(
                tx, &d.tenant, &d.id, &ep.id, &d.event, reason, attempts, error,
            )
            .await?;
        }
    }
    settle_message(tx, d, ep, false).await
}

/// Turns an endpoint `failed` or `disabled`, audits it and announces `endpoint.failed`.
async fn disable_endpoint(
    tx: &mut Tx,
    t: &Tenant,
    ep: &Endpoint,
    status: &str,
    why: &str,
) -> DbResult<()> {
    if !endpoints::set_status(tx, t, &ep.id, status, why).await? {
        return Ok(());
    }
    tracing::warn!(endpoint = %ep.id, status, reason = why, "webhook endpoint stopped");
    audit::record(
        tx,
        &RequestMeta::system(),
        Entry::new(Some(t.org()), Actor::System, "webhook_endpoint.failed")
            .target("webhook_endpoint", &ep.id)
            .details(json!({ "status": status, "reason": why })),
    )
    .await?;
    crate::events::emit(
        tx,
        t,
        "endpoint.failed",
        json!({ "id": ep.id, "url": ep.url, "status": status, "reason": why }),
    )
    .await?;
    Ok(())
}

async fn settle_dead(
    app: &AppState,
    job: &ClaimedJob,
    d: &Loaded,
    ep: &Endpoint,
    reason: &str,
    error: Option<&str>,
    keep: bool,
) -> anyhow::Result<()> {
    let Some(mut tx) = begin_finish(&app.db, job, &Completion::Done).await? else {
        return Ok(());
    };
    if keep {
        dead_letter(&mut tx, d, ep, reason, i64::from(job.attempts) - 1, error).await?;
    } else {
        sql(
            "UPDATE deliveries SET status = 'dead', last_error = $2, updated_at = $3 WHERE id = $1",
        )
        .bind(&d.id)
        .bind(reason)
        .bind(now_ms())
        .execute(&mut tx)
        .await?;
        settle_message(&mut tx, d, ep, false).await?;
    }
    tx.commit().await?;
    Ok(())
}

async fn defer(app: &AppState, job: &ClaimedJob, at_ms: i64) -> anyhow::Result<()> {
    complete(&app.db, job, &Completion::Defer { at_ms }).await?;
    Ok(())
}
