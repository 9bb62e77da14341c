//! Enqueueing jobs: rows of the `jobs` table written in the caller's transaction, so a job
//! exists exactly when the change that caused it does. Workers are woken after commit
//! (in-process notify; `NOTIFY` on Postgres), with polling as the fallback.

use std::sync::OnceLock;

use serde_json::Value;
use tokio::sync::Notify;

use crate::clock::now_ms;
use crate::ids::{OrgId, new_id};
use crate::store::{DbResult, Dialect, Exec, Tx, sql};

/// The Postgres channel workers LISTEN on.
pub const CHANNEL: &str = "rampart_jobs";

/// Wakes this process's workers.
pub fn local_notify() -> &'static Notify {
    static N: OnceLock<Notify> = OnceLock::new();
    N.get_or_init(Notify::new)
}

/// A job to enqueue.
#[derive(Debug, Clone)]
pub struct NewJob {
    pub kind: &'static str,
    pub org: Option<OrgId>,
    pub payload: Value,
    pub run_at: i64,
    /// At most one queued or running job per key (enqueueing a duplicate is a no-op).
    pub unique_key: Option<String>,
}

impl NewJob {
    pub fn now(kind: &'static str, org: Option<OrgId>, payload: Value) -> NewJob {
        NewJob {
            kind,
            org,
            payload,
            run_at: now_ms(),
            unique_key: None,
        }
    }
}

/// Inserts the job in `tx`; returns its id (`None`: a live job with the same unique key
/// already exists).
pub async fn enqueue(tx: &mut Tx, job: NewJob) -> DbResult<Option<String>> {
    let id = new_id("job");
    let now = now_ms();
    let inserted = sql(
        "INSERT INTO jobs (id, kind, org_id, payload, status, run_at, unique_key, created_at, updated_at)
         VALUES ($1, $2, $3, $4, 'queued', $5, $6, $7, $7)
         ON CONFLICT DO NOTHING RETURNING id",
    )
    .bind(&id)
    .bind(job.kind)
    .bind(job.org.as_ref().map(|o| o.to_string()))
    .bind(job.payload.to_string())
    .bind(job.run_at)
    .bind(job.unique_key)
    .bind(now)
    .fetch_optional(tx)
    .await?;
    if inserted.is_none() {
        return Ok(None);
    }
    wake_after_commit(tx).await?;
    Ok(Some(id))
}

/// Arranges for workers to wake when `tx` commits.
pub async fn wake_after_commit(tx: &mut Tx) -> DbResult<()> {
    if tx.dialect() == Dialect::Postgres {
        // Delivered by Postgres at commit, to every listening instance.
        sql("SELECT pg_notify('rampart_jobs', '') AS n")
            .fetch_one(tx)
            .await?;
    }
    tx.after_commit(|| local_notify().notify_waiters());
    Ok(())
}
