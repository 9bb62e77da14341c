//! The worker: claims due jobs in batches, runs them concurrently under leases it renews,
//! heartbeats, and stops gracefully (finishes what it can within the shutdown bound, then hands
//! back the rest at once rather than letting their leases run out).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use futures_util::FutureExt as _;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::queue::{self, NewJob, local_notify};
use super::retry::{INTERNAL_JOB_ATTEMPTS, Policy};
use super::{Background, ClaimedJob, Completion, JobContext, Loop, LoopContext, Registry};
use crate::clock::now_ms;
use crate::ids::WorkerId;
use crate::state::AppState;
use crate::store::Q;

/// How long an idle worker sleeps before looking again when nobody wakes it.
const POLL: Duration = Duration::from_millis(500);
const MAX_BATCH: usize = 100;
/// How often a worker looks for jobs whose lease expired (leases last a minute by default).
const TAKEOVER_EVERY: Duration = Duration::from_secs(1);
/// After a wake-up under load, how long a worker lets more jobs arrive before claiming: one
/// claim then takes many jobs instead of one transaction per enqueued job. An idle worker
/// (its last claim took at most one job) claims at once, so a lone job waits for nothing.
const GATHER: Duration = Duration::from_millis(2);

/// Tells the job loop when a background loop (the scheduler) is working through a backlog,
/// and since when.
///
/// Dispatch has a deadline (SPEC §4: within 1 s of `send_at`) and costs a few rows per item;
/// a delivery costs an HTTP request and has no deadline. When thousands of items fall due at
/// once, the deliveries of the first batches would take most of the CPU from the dispatch of
/// the rest, so the job loop claims nothing new while the scheduler catches up, for at most
/// [`CATCH_UP_MAX`]; then both go on together, so a scheduler that is always behind cannot
/// starve deliveries. Running jobs carry on either way.
pub type CatchUp = tokio::sync::watch::Sender<Option<std::time::Instant>>;

/// The longest the job loop holds back for a loop that is catching up.
pub const CATCH_UP_MAX: Duration = Duration::from_secs(2);

fn hostname() -> String {
    std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

async fn heartbeat(
    state: &AppState,
    worker: &WorkerId,
    started_at: i64,
) -> crate::store::DbResult<()> {
    Q::write("INSERT INTO workers (worker_id, build_id, hostname, started_at, last_seen) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (worker_id) DO UPDATE SET last_seen = excluded.last_seen, stopped_at = NULL")
        .bind(worker)
        .bind(&state.config.build_id)
        .bind(hostname())
        .bind(started_at)
        .bind(now_ms())
        .execute(&mut state.db.clone())
        .await?;
    Ok(())
}

/// Runs a worker, with `background` beside it, until `state.shutdown` fires.
pub async fn run(state: AppState, registry: Registry, background: impl Loop) -> anyhow::Result<()> {
    let worker = WorkerId::new();
    let registry = Arc::new(registry);
    let started_at = now_ms();
    let lease_ms = i64::try_from(state.config.job_lease.as_millis()).unwrap_or(60_000);
    heartbeat(&state, &worker, started_at).await?;
    tracing::info!(worker = %worker, build_id = %state.config.build_id, concurrency = state.config.worker_concurrency, "worker started");
    let stop = state.shutdown.clone();

    // Heartbeat and lease renewal, a third of a lease apart at most.
    let hb = {
        let (state, worker) = (state.clone(), worker.clone());
        let every = Duration::from_millis(u64::try_from(lease_ms / 3).unwrap_or(20_000))
            .min(Duration::from_secs(2));
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tokio::select! {
                    _ = state.shutdown.cancelled() => return,
                    _ = tick.tick() => {}
                }
                if let Err(e) = heartbeat(&state, &worker, started_at).await {
                    tracing::warn!(error = %e, "worker heartbeat failed");
                }
                if let Err(e) = queue::renew_leases(&state.db, &worker, lease_ms).await {
                    tracing::warn!(error = %e, "lease renewal failed");
                }
            }
        })
    };
    let listener = state
        .db
        .pg_pool()
        .cloned()
        .map(|pool| tokio::spawn(listen(pool, stop.clone())));
    let periodic = tokio::spawn(schedule_periodic(
        state.clone(),
        registry.periodic().to_vec(),
    ));
    let catch_up = tokio::sync::watch::channel(None).0;
    let mut scheduler_behind = catch_up.subscribe();
    let scheduler = tokio::spawn(background.run(LoopContext {
        app: state.clone(),
        background: Background::new(),
        catch_up,
    }));

    let permits = Arc::new(Semaphore::new(state.config.worker_concurrency as usize));
    let mut running: JoinSet<()> = JoinSet::new();
    let mut failures = 0u32;
    let mut last_takeover: Option<std::time::Instant> = None;
    let mut last_claimed = 0usize;
    loop {
        if stop.is_cancelled() {
            break;
        }
        while running.try_join_next().is_some() {}
        // Register for a wake-up before looking, so a job enqueued meanwhile is not missed.
        let notified = local_notify().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();

        // The scheduler has a backlog of due items: let it dispatch first (bounded; see
        // [`CatchUp`]).
        let held_back = (*scheduler_behind.borrow_and_update())
            .and_then(|since| CATCH_UP_MAX.checked_sub(since.elapsed()));
        if let Some(left) = held_back {
            tokio::select! {
                _ = stop.cancelled() => break,
                Ok(()) = scheduler_behind.changed() => {}
                _ = tokio::time::sleep(left) => {}
            }
            continue;
        }
        let free = permits.available_permits().min(MAX_BATCH);
        let mut claimed_all = false;
        if free > 0 {
            let take_over = last_takeover.is_none_or(|t| t.elapsed() >= TAKEOVER_EVERY);
            if take_over {
                last_takeover = Some(std::time::Instant::now());
            }
            match queue::claim(&state.db, &worker, free as i64, lease_ms, take_over).await {
                Ok(jobs) => {
                    failures = 0;
                    claimed_all = jobs.len() == free;
                    last_claimed = jobs.len();
                    for job in jobs {
                        let permit = permits.clone().acquire_owned().await?;
                        let state = state.clone();
                        let registry = registry.clone();
                        running.spawn(async move {
                            execute(&state, &registry, job).await;
                            drop(permit);
                        });
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "claiming jobs failed");
                }
            }
        }
        if claimed_all && failures == 0 {
            continue; // there may be more due right now
        }
        let wait = if failures > 0 {
            Duration::from_millis(200 * u64::from(failures.min(25)))
        } else {
            match queue::next_due(&state.db).await {
                Ok(Some(t)) => {
                    Duration::from_millis(u64::try_from(t - now_ms()).unwrap_or(0)).min(POLL)
                }
                _ => POLL,
            }
        };
        if wait.is_zero() && permits.available_permits() > 0 {
            continue;
        }
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = &mut notified => {
                if last_claimed > 1 {
                    tokio::time::sleep(GATHER).await;
                }
            }
            _ = tokio::time::sleep(wait.max(Duration::from_millis(5))) => {}
            Some(_) = running.join_next(), if permits.available_permits() == 0 => {}
        }
    }

    tracing::info!(worker = %worker, running = running.len(), "worker stopping: finishing running jobs");
    let drain = async { while running.join_next().await.is_some() {} };
    if tokio::time::timeout(state.config.shutdown_timeout, drain)
        .await
        .is_err()
    {
        running.abort_all();
    }
    let released = queue::release_all(&state.db, &worker).await.unwrap_or(0);
    if released > 0 {
        tracing::info!(released, "unfinished jobs handed back");
    }
    let _ = Q::write("UPDATE workers SET stopped_at = $2, last_seen = $2 WHERE worker_id = $1")
        .bind(&worker)
        .bind(now_ms())
        .execute(&mut state.db.clone())
        .await;
    let _ = scheduler.await;
    hb.abort();
    periodic.abort();
    if let Some(l) = listener {
        l.abort();
    }
    tracing::info!(worker = %worker, "worker stopped");
    Ok(())
}

/// Runs every due job, and every job those enqueue that is due at once, until none is left;
/// returns how many ran. For tests and one-off tools that need the queue's work done now
/// rather than by a running worker: a job retried or scheduled for later is left for later.
pub async fn drain(state: &AppState, registry: &Registry) -> anyhow::Result<usize> {
    let worker = WorkerId::new();
    let lease_ms = i64::try_from(state.config.job_lease.as_millis()).unwrap_or(60_000);
    let mut ran = 0;
    loop {
        let jobs = queue::claim(&state.db, &worker, MAX_BATCH as i64, lease_ms, false).await?;
        if jobs.is_empty() {
            return Ok(ran);
        }
        ran += jobs.len();
        futures_util::future::join_all(jobs.into_iter().map(|job| execute(state, registry, job)))
            .await;
    }
}

/// Wakes this process's workers and scheduler on Postgres `NOTIFY rampart_jobs` and
/// `rampart_scheduled` (sent at commit by any instance), reconnecting as needed.
async fn listen(pool: sqlx::PgPool, stop: CancellationToken) {
    loop {
        match sqlx::postgres::PgListener::connect_with(&pool).await {
            Ok(mut l) => {
                if l.listen_all([queue::CHANNEL, queue::SCHEDULER_CHANNEL])
                    .await
                    .is_ok()
                {
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            n = l.recv() => match n {
                                Ok(n) if n.channel() == queue::SCHEDULER_CHANNEL => {
                                    queue::scheduler_notify().notify_waiters();
                                }
                                Ok(_) => local_notify().notify_waiters(),
                                Err(_) => break,
                            }
                        }
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "LISTEN connection failed; polling meanwhile"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

/// Enqueues the periodic jobs; the unique key makes it one per deployment, whatever the number
/// of workers.
async fn schedule_periodic(state: AppState, kinds: Vec<&'static str>) {
    let mut tick = tokio::time::interval(Duration::from_secs(30));
    loop {
        tokio::select! {
            _ = state.shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let result = async {
            let mut tx = state.db.begin().await?;
            for kind in &kinds {
                queue::enqueue(&mut tx, NewJob::periodic(kind)).await?;
            }
            tx.commit().await
        }
        .await;
        if let Err(e) = result {
            tracing::debug!(error = %e, "could not schedule periodic jobs");
        }
    }
}

/// Runs one job with panics caught; a failing or panicking job is retried under the policy.
async fn execute(state: &AppState, registry: &Registry, job: ClaimedJob) {
    let started = std::time::Instant::now();
    let kind = job.kind.clone();
    let background = Background::new();
    let cx = JobContext {
        app: state,
        job: &job,
        background: &background,
    };
    let result = AssertUnwindSafe(registry.run(&cx)).catch_unwind().await;
    metrics::histogram!("rampart_job_duration_seconds", "kind" => kind.clone())
        .record(started.elapsed().as_secs_f64());
    let error = match result {
        Ok(Ok(())) => return,
        Ok(Err(e)) => format!("{e:#}"),
        Err(panic) => {
            let msg = panic
                .downcast_ref::<&str>()
                .map(|s| (*s).to_owned())
                .or_else(|| panic.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "unknown panic".into());
            format!("panicked: {msg}")
        }
    };
    tracing::warn!(job = %job.id, kind = %kind, attempt = job.attempts, error = %error, "job failed");
    let policy = Policy {
        base: state.config.retry_base_delay,
        max: state.config.retry_max_delay,
    };
    let completion = if job.attempts >= INTERNAL_JOB_ATTEMPTS {
        Completion::Dead { error }
    } else {
        let at =
            now_ms() + i64::try_from(policy.next_delay(job.attempts).as_millis()).unwrap_or(60_000);
        Completion::Retry { at_ms: at, error }
    };
    if let Err(e) = queue::complete(&state.db, &job, &completion).await {
        // The lease will run out and another worker will take the job over.
        tracing::error!(job = %job.id, error = %e, "could not record a job failure");
    }
}
