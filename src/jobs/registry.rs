//! The jobs a worker can run, by kind, and the periodic ones it enqueues.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context as _;
use futures_util::future::BoxFuture;
use serde::Deserialize as _;

use super::{Job, JobContext, PayloadOf, kind_of};

/// A job with its payload type erased, as the runner calls it.
trait Runnable: Send + Sync {
    fn run<'a>(&'a self, cx: &'a JobContext<'a>) -> BoxFuture<'a, anyhow::Result<()>>;
}

impl<J: Job> Runnable for J {
    fn run<'a>(&'a self, cx: &'a JobContext<'a>) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let payload = PayloadOf::<J>::deserialize(&cx.job.payload).with_context(|| {
                format!("the payload of a {} job does not parse", kind_of::<J>())
            })?;
            Job::run(self, cx, payload).await
        })
    }
}

/// Every kind of job a worker runs. Built once, at the top of the application.
#[derive(Clone, Default)]
pub struct Registry {
    jobs: HashMap<&'static str, Arc<dyn Runnable>>,
    /// Jobs enqueued every 30 s under a unique key (one per deployment), with an empty payload.
    periodic: Vec<&'static str>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    /// Adds a kind of job. Two jobs of one kind would be a programming error: the later wins.
    pub fn with<J: Job>(mut self, job: J) -> Registry {
        self.jobs.insert(kind_of::<J>(), Arc::new(job));
        self
    }

    /// Adds a kind of job that runs periodically, with a default payload.
    pub fn with_periodic<J: Job>(mut self, job: J) -> Registry
    where
        PayloadOf<J>: Default,
    {
        self.periodic.push(kind_of::<J>());
        self.with(job)
    }

    /// The periodic kinds.
    pub fn periodic(&self) -> &[&'static str] {
        &self.periodic
    }

    /// Runs the job `cx.job` names; an unknown kind is an error (the job is retried, then
    /// dead), so an older worker never drops a newer kind's jobs.
    pub async fn run(&self, cx: &JobContext<'_>) -> anyhow::Result<()> {
        match self.jobs.get(cx.job.kind.as_str()) {
            Some(job) => job.run(cx).await,
            None => anyhow::bail!("this worker does not know job kind {:?}", cx.job.kind),
        }
    }
}
