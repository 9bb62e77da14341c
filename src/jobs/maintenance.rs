//! The periodic purge: retention windows for delivery logs, settled deliveries and events,
//! resolved dead letters, idempotency records, dead jobs and worker rows. Each statement
//! deletes a bounded batch, so a large backlog drains over several runs without long locks.

use super::queue::complete;
use super::{Completion, Job, JobContext, JobKind, NoPayload};
use crate::clock::now_ms;
use crate::deliveries::hourly::hour_of;
use crate::store::Q;

const BATCH: i64 = 5_000;

/// The periodic retention purge.
pub struct Purge;

impl JobKind for Purge {
    const KIND: &'static str = "maintenance.purge";
    type Payload = NoPayload;
}

impl Job for Purge {
    type Kind = Self;

    async fn run(&self, cx: &JobContext<'_>, _: NoPayload) -> anyhow::Result<()> {
        purge(cx).await
    }
}

fn ms(d: std::time::Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2)
}

async fn purge(cx: &JobContext<'_>) -> anyhow::Result<()> {
    let (state, job) = (cx.app, cx.job);
    let now = now_ms();
    let logs_before = now - ms(state.config.retention_delivery_logs);
    let dl_before = now - ms(state.config.retention_dead_letters);
    let mut db = state.db.clone();
    let mut total = crate::traffic::idempotency::purge(&state.db).await?;
    let steps: Vec<(&str, Q, i64)> = vec![
        ("delivery_attempts", Q::write("DELETE FROM delivery_attempts WHERE id IN (SELECT id FROM delivery_attempts WHERE created_at < $1 LIMIT $2)"), logs_before),
        // An hour's counts stay while any of its attempts can still be in the log.
        ("delivery_hourly", crate::deliveries::hourly::purge(), hour_of(logs_before)),
        ("sandbox_deliveries", Q::write("DELETE FROM sandbox_deliveries WHERE id IN (SELECT id FROM sandbox_deliveries WHERE created_at < $1 LIMIT $2)"), logs_before),
        (
            "deliveries",
            Q::write("DELETE FROM deliveries WHERE id IN (SELECT d.id FROM deliveries d WHERE d.status <> 'pending' AND d.updated_at < $1
                   AND NOT EXISTS (SELECT 1 FROM delivery_attempts a WHERE a.delivery_id = d.id)
                   AND NOT EXISTS (SELECT 1 FROM dead_letters l WHERE l.delivery_id = d.id AND l.status <> 'resolved')
                   AND NOT EXISTS (SELECT 1 FROM messages m WHERE m.delivery_id = d.id) LIMIT $2)"),
            logs_before,
        ),
        (
            "events",
            Q::write("DELETE FROM events WHERE id IN (SELECT e.id FROM events e WHERE e.created_at < $1
                   AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id) LIMIT $2)"),
            logs_before,
        ),
        ("dead_letters", Q::write("DELETE FROM dead_letters WHERE id IN (SELECT id FROM dead_letters WHERE status = 'resolved' AND resolved_at < $1 LIMIT $2)"), dl_before),
        ("jobs", Q::write("DELETE FROM jobs WHERE id IN (SELECT id FROM jobs WHERE status = 'dead' AND updated_at < $1 LIMIT $2)"), now - 7 * 86_400_000),
        ("workers", Q::write("DELETE FROM workers WHERE worker_id IN (SELECT worker_id FROM workers WHERE last_seen < $1 LIMIT $2)"), now - 86_400_000),
        (
            "health_samples",
            Q::write("DELETE FROM health_samples WHERE id IN (SELECT id FROM health_samples WHERE taken_at < $1 LIMIT $2)"),
            now - 91 * 86_400_000,
        ),
    ];
    for (table, q, before) in steps {
        let n = q.bind(before).bind(BATCH).execute(&mut db).await?;
        if n > 0 {
            tracing::info!(table, purged = n, "retention purge");
        }
        total += n;
    }
    metrics::counter!("rampart_retention_purged_total").increment(total);
    complete(&state.db, job, &Completion::Done).await?;
    Ok(())
}
