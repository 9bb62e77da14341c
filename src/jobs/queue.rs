//! Enqueueing jobs: rows of the `jobs` table written in the caller's transaction, so a job
//! exists exactly when the change that caused it does. Workers are woken after commit
//! (in-process notify; `NOTIFY` on Postgres), with polling as the fallback.

use std::sync::OnceLock;

use serde_json::Value;
use tokio::sync::Notify;

use super::{ClaimedJob, Completion, JobKind, JobStatus};
use crate::clock::now_ms;
use crate::ids::{JobId, LeaseToken, OrgId, WorkerId};
use crate::store::{Arg, Db, DbError, DbResult, Q, Table, Tx};

/// The Postgres channel job workers LISTEN on.
pub const CHANNEL: &str = "rampart_jobs";
/// The Postgres channel schedulers LISTEN on.
pub const SCHEDULER_CHANNEL: &str = "rampart_scheduled";

/// Wakes this process's job workers.
pub fn local_notify() -> &'static Notify {
    static N: OnceLock<Notify> = OnceLock::new();
    N.get_or_init(Notify::new)
}

/// Wakes this process's scheduler. Apart from [`local_notify`], so that the jobs every API
/// write enqueues do not send the scheduler looking for due messages each time.
pub fn scheduler_notify() -> &'static Notify {
    static N: OnceLock<Notify> = OnceLock::new();
    N.get_or_init(Notify::new)
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    kind: &'static str,
    org: Option<OrgId>,
    payload: Value,
    run_at: i64,
    /// At most one queued or running job per key (enqueueing a duplicate is a no-op).
    unique_key: Option<String>,
}

impl NewJob {
    /// A job of kind `K`, due now.
    pub fn of<K: JobKind>(org: Option<&OrgId>, payload: &K::Payload) -> DbResult<NewJob> {
        let payload = serde_json::to_value(payload)
            .map_err(|e| DbError::Other(sqlx::Error::Encode(Box::new(e))))?;
        Ok(NewJob::raw(K::KIND, org, payload))
    }

    fn raw(kind: &'static str, org: Option<&OrgId>, payload: Value) -> NewJob {
        NewJob {
            kind,
            org: org.cloned(),
            payload,
            run_at: now_ms(),
            unique_key: None,
        }
    }

    /// A periodic job of `kind` (see [`super::Registry::with_periodic`]): one per deployment.
    pub(super) fn periodic(kind: &'static str) -> NewJob {
        NewJob {
            unique_key: Some(format!("periodic:{kind}")),
            ..NewJob::raw(kind, None, Value::Object(Default::default()))
        }
    }
}

/// Inserts the job in `tx`; returns its id (`None`: a live job with the same unique key
/// already exists).
pub async fn enqueue(tx: &mut Tx, job: NewJob) -> DbResult<Option<JobId>> {
    let id = JobId::new();
    let now = now_ms();
    let inserted: Option<(JobId,)> = Q::write(
        "INSERT INTO jobs (id, kind, org_id, payload, status, run_at, unique_key, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $7)
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&id)
    .bind(job.kind)
    .bind(job.org.as_ref())
    .bind(&job.payload)
    .bind(job.run_at)
    .bind(job.unique_key)
    .bind(now)
    .fetch_optional(tx)
    .await?;
    if inserted.is_none() {
        return Ok(None);
    }
    wake_after_commit(tx);
    Ok(Some(id))
}

/// Inserts many jobs (without unique keys) in a constant number of statements, as deferred
/// writes.
pub async fn enqueue_many(tx: &mut Tx, jobs: Vec<NewJob>) -> DbResult<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    let now = now_ms();
    let rows = jobs
        .into_iter()
        .map(|j| {
            debug_assert!(j.unique_key.is_none(), "unique jobs go through enqueue");
            vec![
                Arg::from(JobId::new()),
                Arg::from(j.kind),
                Arg::from(j.org.as_ref()),
                Arg::from(&j.payload),
                Arg::from(JobStatus::Queued),
                Arg::from(j.run_at),
                Arg::from(now),
                Arg::from(now),
            ]
        })
        .collect();
    tx.defer_insert_many(
        Table::JOBS,
        "INSERT INTO jobs (id, kind, org_id, payload, status, run_at, created_at, updated_at)",
        "",
        rows,
    )
    .await?;
    wake_after_commit(tx);
    Ok(())
}

/// Arranges for job workers to wake when `tx` commits: this process's at once, every other
/// instance's by `NOTIFY` on Postgres.
pub fn wake_after_commit(tx: &mut Tx) {
    tx.notify_after_commit(CHANNEL);
    tx.after_commit(|| local_notify().notify_waiters());
}

/// Arranges for schedulers to wake when `tx` commits (a scheduled message became pending).
pub fn wake_scheduler_after_commit(tx: &mut Tx) {
    tx.notify_after_commit(SCHEDULER_CHANNEL);
    tx.after_commit(|| scheduler_notify().notify_waiters());
}

/// A claimed row, before its lease token is attached.
#[derive(sqlx::FromRow)]
struct Claimed {
    id: JobId,
    kind: String,
    org_id: Option<OrgId>,
    payload: crate::store::JsonText<Value>,
    attempts: i64,
}

/// Claims up to `limit` jobs for `worker`, with a fresh lease token: if `take_over` is set,
/// first those whose lease expired (their worker died), then queued ones that are due, oldest
/// first. Two statements rather than one with `OR`, so each walks its own index in order
/// (`jobs_lease`, `jobs_due`) instead of sorting every due row on each claim; expired leases
/// are rare and need not be looked for on every claim. Postgres skips rows other workers hold;
/// SQLite serializes writers, so each statement is atomic.
pub async fn claim(
    db: &Db,
    worker: &WorkerId,
    limit: i64,
    lease_ms: i64,
    take_over: bool,
) -> DbResult<Vec<ClaimedJob>> {
    let token = LeaseToken::new();
    let mut jobs = Vec::new();
    if take_over {
        let expired = Q::write_per_dialect(
            "UPDATE jobs SET status = 'running', lease_owner = $1, lease_token = $2, lease_expires_at = $3,
                    attempts = attempts + 1, updated_at = $4
             WHERE id IN (SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < $4 ORDER BY lease_expires_at LIMIT $5)
             RETURNING id, kind, org_id, payload, attempts",
            "UPDATE jobs SET status = 'running', lease_owner = $1, lease_token = $2, lease_expires_at = $3,
                    attempts = attempts + 1, updated_at = $4
             WHERE id IN (SELECT id FROM jobs WHERE status = 'running' AND lease_expires_at < $4 ORDER BY lease_expires_at LIMIT $5 FOR UPDATE SKIP LOCKED)
             RETURNING id, kind, org_id, payload, attempts",
        );
        jobs = claim_with(db, expired, worker, &token, limit, lease_ms).await?;
    }
    let left = limit - jobs.len() as i64;
    if left > 0 {
        let due = Q::write_per_dialect(
            "UPDATE jobs SET status = 'running', lease_owner = $1, lease_token = $2, lease_expires_at = $3,
                    attempts = attempts + 1, updated_at = $4
             WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND run_at <= $4 ORDER BY run_at LIMIT $5)
             RETURNING id, kind, org_id, payload, attempts",
            "UPDATE jobs SET status = 'running', lease_owner = $1, lease_token = $2, lease_expires_at = $3,
                    attempts = attempts + 1, updated_at = $4
             WHERE id IN (SELECT id FROM jobs WHERE status = 'queued' AND run_at <= $4 ORDER BY run_at LIMIT $5 FOR UPDATE SKIP LOCKED)
             RETURNING id, kind, org_id, payload, attempts",
        );
        jobs.extend(claim_with(db, due, worker, &token, left, lease_ms).await?);
    }
    Ok(jobs)
}

async fn claim_with(
    db: &Db,
    q: Q,
    worker: &WorkerId,
    token: &LeaseToken,
    limit: i64,
    lease_ms: i64,
) -> DbResult<Vec<ClaimedJob>> {
    let now = now_ms();
    let rows: Vec<Claimed> = q
        .bind(worker)
        .bind(token)
        .bind(now + lease_ms)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut db.clone())
        .await?;
    Ok(rows
        .into_iter()
        .map(|r| ClaimedJob {
            id: r.id,
            kind: r.kind,
            org_id: r.org_id,
            payload: r.payload.into_inner(),
            attempts: u32::try_from(r.attempts).unwrap_or(u32::MAX),
            lease_token: token.clone(),
        })
        .collect())
}

/// Opens the transaction that finishes `job` and writes how it ended (`c`) first, fenced by the
/// lease token: the write itself proves the lease is still ours (and, on Postgres, locks the
/// row so no takeover can interleave). The handler's own writes follow in the same
/// transaction, which the caller commits. `None`: the lease was lost; nothing was written.
pub async fn begin_finish(db: &Db, job: &ClaimedJob, c: &Completion) -> DbResult<Option<Tx>> {
    let mut tx = db.begin().await?;
    if !finish(&mut tx, job, c).await? {
        tx.rollback().await?;
        metrics::counter!("rampart_jobs_lease_lost_total").increment(1);
        return Ok(None);
    }
    Ok(Some(tx))
}

/// [`begin_finish`] with nothing else to write: records the completion and commits. `false`:
/// the lease was lost.
pub async fn complete(db: &Db, job: &ClaimedJob, c: &Completion) -> DbResult<bool> {
    match begin_finish(db, job, c).await? {
        Some(tx) => tx.commit().await.map(|()| true),
        None => Ok(false),
    }
}

/// Writes how `job` ended in `tx`, if its lease is still the one it was claimed with; `false`
/// (nothing written) if not. Write it before anything else the job changes: it is the fence.
pub async fn finish(tx: &mut Tx, job: &ClaimedJob, c: &Completion) -> DbResult<bool> {
    let now = now_ms();
    let (n, outcome) = match c {
        Completion::Done => (
            Q::write("DELETE FROM jobs WHERE id = $1 AND lease_token = $2 AND status = 'running'")
                .bind(&job.id)
                .bind(&job.lease_token)
                .execute(tx)
                .await?,
            "done",
        ),
        Completion::Retry { at_ms, error } => (
            Q::write("UPDATE jobs SET status = 'queued', run_at = $3, last_error = $4, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = $5
                 WHERE id = $1 AND lease_token = $2 AND status = 'running'")
                .bind(&job.id)
                .bind(&job.lease_token)
                .bind(*at_ms)
                .bind(truncate(error, 1000))
                .bind(now)
                .execute(tx)
                .await?,
            "retry",
        ),
        Completion::Defer { at_ms } => (
            Q::write("UPDATE jobs SET status = 'queued', run_at = $3, attempts = attempts - 1, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = $4
                 WHERE id = $1 AND lease_token = $2 AND status = 'running'")
                .bind(&job.id)
                .bind(&job.lease_token)
                .bind(*at_ms)
                .bind(now)
                .execute(tx)
                .await?,
            "deferred",
        ),
        Completion::Dead { error } => (
            Q::write("UPDATE jobs SET status = 'dead', last_error = $3, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = $4
                 WHERE id = $1 AND lease_token = $2 AND status = 'running'")
                .bind(&job.id)
                .bind(&job.lease_token)
                .bind(truncate(error, 1000))
                .bind(now)
                .execute(tx)
                .await?,
            "dead",
        ),
    };
    if n == 0 {
        return Ok(false);
    }
    if matches!(c, Completion::Retry { .. } | Completion::Defer { .. }) {
        wake_after_commit(tx);
    }
    metrics::counter!("rampart_jobs_finished_total", "kind" => job.kind.clone(), "outcome" => outcome)
        .increment(1);
    Ok(true)
}

/// [`finish`] with [`Completion::Done`] for many jobs in one statement: returns the ids
/// of those whose lease still held (now deleted); the others are untouched.
pub async fn finish_done_many(
    tx: &mut Tx,
    jobs: &[&ClaimedJob],
) -> DbResult<std::collections::HashSet<JobId>> {
    if jobs.is_empty() {
        return Ok(Default::default());
    }
    // Each job with the lease it was claimed under, as `id lease` (neither holds a space).
    let held: Vec<String> = jobs
        .iter()
        .map(|j| format!("{} {}", j.id, j.lease_token))
        .collect();
    let ids: Vec<String> = jobs.iter().map(|j| j.id.to_string()).collect();
    let done: std::collections::HashSet<JobId> = Q::write_per_dialect(
        "DELETE FROM jobs WHERE status = 'running' AND id IN (SELECT value FROM json_each($1))
           AND id || ' ' || lease_token IN (SELECT value FROM json_each($2)) RETURNING id",
        "DELETE FROM jobs WHERE status = 'running' AND id = ANY($1)
           AND id || ' ' || lease_token = ANY($2) RETURNING id",
    )
    .planned_per_call()
    .bind(ids)
    .bind(held)
    .fetch_column(tx)
    .await?
    .into_iter()
    .collect();
    for j in jobs.iter().filter(|j| done.contains(&j.id)) {
        metrics::counter!("rampart_jobs_finished_total", "kind" => j.kind.clone(), "outcome" => "done")
            .increment(1);
    }
    let lost = jobs.len() - done.len();
    if lost > 0 {
        metrics::counter!("rampart_jobs_lease_lost_total").increment(lost as u64);
    }
    Ok(done)
}

/// Extends the leases of every job `worker` still runs.
pub async fn renew_leases(db: &Db, worker: &WorkerId, lease_ms: i64) -> DbResult<u64> {
    Q::write("UPDATE jobs SET lease_expires_at = $2 WHERE lease_owner = $1 AND status = 'running'")
        .bind(worker)
        .bind(now_ms() + lease_ms)
        .execute(&mut db.clone())
        .await
}

/// Hands back the jobs `worker` still holds (graceful stop): queued again at once, the
/// interrupted attempt not counted.
pub async fn release_all(db: &Db, worker: &WorkerId) -> DbResult<u64> {
    let n = Q::write("UPDATE jobs SET status = 'queued', attempts = attempts - 1, lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL, updated_at = $2
                 WHERE lease_owner = $1 AND status = 'running'")
        .bind(worker)
        .bind(now_ms())
        .execute(&mut db.clone())
        .await?;
    if n > 0 {
        local_notify().notify_waiters();
    }
    Ok(n)
}

/// When the next queued job is due, if any.
pub async fn next_due(db: &Db) -> DbResult<Option<i64>> {
    Q::read("SELECT MIN(run_at) AS t FROM jobs WHERE status = 'queued'")
        .fetch_scalar(&mut db.clone())
        .await
}

/// Queued, running and dead jobs by kind and status (metrics, deep health).
pub async fn depth(db: &Db) -> DbResult<Vec<(String, JobStatus, i64)>> {
    Q::read("SELECT kind, status, COUNT(*) AS n FROM jobs WHERE status IN ('queued', 'running', 'dead') GROUP BY kind, status")
        .fetch_all(&mut db.clone())
        .await
}

pub async fn due_backlog(db: &Db) -> DbResult<i64> {
    Q::read("SELECT COUNT(*) AS n FROM jobs WHERE status = 'queued' AND run_at <= $1")
        .bind(now_ms())
        .fetch_scalar(&mut db.clone())
        .await
}

pub fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}
