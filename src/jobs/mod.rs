//! Durable jobs in the application database.
//!
//! A job is a row written in the transaction of the change that causes it ([`queue::enqueue`]).
//! Workers claim due jobs in batches and hold a lease per job (longer than any HTTP timeout,
//! renewed while the job runs); a job whose worker died is taken over once its lease expires.
//! Every write that finishes a job happens in a transaction that first proves the lease is
//! still ours ([`queue::begin_finish`]): a worker whose lease was taken over can no longer
//! complete, fail or reschedule that job. Handlers are idempotent by contract: delivery is
//! at-least-once.
//!
//! Each kind of job implements [`Job`] with a typed payload; the runner finds it in the
//! [`Registry`] built at the top of the application, and background loops (the scheduler)
//! implement [`Loop`]. This layer depends on no feature.

pub mod maintenance;
pub mod queue;
mod registry;
pub mod retry;
pub mod runner;
pub mod witness;

use std::future::Future;

pub use registry::Registry;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::ids::{JobId, LeaseToken, OrgId};
use crate::state::AppState;

pub use witness::Background;

/// A kind of background job as whoever queues one sees it: its name and payload. Its handler
/// ([`Job`]) may sit higher up, so that code queueing a job need not depend on the code that
/// runs it (a delivery that emits an event queues deliveries).
pub trait JobKind: 'static {
    /// Its name in `jobs.kind`, under which the registry finds the handler.
    const KIND: &'static str;
    /// What it is given, stored as JSON in `jobs.payload`.
    type Payload: Serialize + DeserializeOwned + Send + Sync;
}

/// The handler of one [`JobKind`].
pub trait Job: Send + Sync + 'static {
    /// The kind it runs (often itself).
    type Kind: JobKind;

    /// Runs one claimed job. It finishes the job itself (`queue::complete`,
    /// `queue::begin_finish`); an error or a panic counts as a failed attempt.
    fn run(
        &self,
        cx: &JobContext<'_>,
        payload: PayloadOf<Self>,
    ) -> impl Future<Output = anyhow::Result<()>> + Send;
}

/// The payload type of a handler's kind.
pub type PayloadOf<J> = <<J as Job>::Kind as JobKind>::Payload;

/// The name of a handler's kind.
pub const fn kind_of<J: Job>() -> &'static str {
    <J::Kind as JobKind>::KIND
}

/// What a running job may use.
pub struct JobContext<'a> {
    pub app: &'a AppState,
    pub job: &'a ClaimedJob,
    pub background: &'a Background,
}

/// A loop that runs beside the job workers for as long as they do (the scheduler).
pub trait Loop: Send + 'static {
    fn run(self, cx: LoopContext) -> impl Future<Output = ()> + Send;
}

/// What a background loop is given.
pub struct LoopContext {
    pub app: AppState,
    pub background: Background,
    /// Set while the loop has a backlog to catch up on: the workers claim no new jobs
    /// meanwhile, for at most [`runner::CATCH_UP_MAX`] (see `docs/ARCHITECTURE.md`, "Jobs").
    pub catch_up: runner::CatchUp,
}

/// A claimed job, as a handler sees it.
#[derive(Debug, Clone)]
pub struct ClaimedJob {
    pub id: JobId,
    pub kind: String,
    pub org_id: Option<OrgId>,
    pub payload: serde_json::Value,
    /// How many times this job has been claimed, this time included.
    pub attempts: u32,
    pub lease_token: LeaseToken,
}

/// The payload of a job that needs none (the periodic ones).
#[derive(Debug, Default, Clone, Copy, serde::Serialize, serde::Deserialize)]
pub struct NoPayload {}

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

crate::text_enum::text_enum! {
    /// Where a job is in its life (`done` jobs are deleted, not kept).
    pub enum JobStatus {
        Queued = "queued",
        Running = "running",
        Done = "done",
        Dead = "dead",
    }
}
