//! Durable jobs in the application database.
//!
//! A job is a row written in the transaction of the change that causes it ([`queue::enqueue`]).
//! Workers claim due jobs in batches and hold a lease per job (longer than any HTTP timeout,
//! renewed while the job runs); a job whose worker died is taken over once its lease expires.
//! Every write that finishes a job happens in a transaction that first proves the lease is
//! still ours ([`queue::begin_finish`]): a worker whose lease was taken over can no longer
//! complete, fail or reschedule that job. Handlers are idempotent by contract: delivery is
//! at-least-once.

pub mod maintenance;
pub mod queue;
pub mod retry;
pub mod runner;

use serde_json::Value;

/// A claimed job, as a handler sees it.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: String,
    pub kind: String,
    pub org_id: Option<String>,
    pub payload: Value,
    /// How many times this job has been claimed, this time included.
    pub attempts: u32,
    pub lease_token: String,
}

/// How a job ended, written first in the transaction that finishes it ([`queue::begin_finish`]).
#[derive(Debug, Clone, PartialEq)]
pub enum Completion {
    /// Finished: the row is deleted.
    Done,
    /// Failed; run again at `at_ms`.
    Retry { at_ms: i64, error: String },
    /// Not attempted (paused endpoint, rate limit): run again at `at_ms` without using up an
    /// attempt.
    Defer { at_ms: i64 },
    /// Failed for good: kept as `dead` with its error (domain dead letters are written by the
    /// handler in the same transaction).
    Dead { error: String },
}
