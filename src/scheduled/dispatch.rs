//! The scheduler: a background loop beside the job workers that sleeps until the next
//! `send_at`, then takes due items in batches and dispatches each batch in the transaction
//! that takes it (see the module above for why that makes dispatch exactly once).

use std::time::Duration;

use serde_json::json;

use super::ScheduledStatus;
use super::store::{self, Taken};
use crate::access::principal::Tenant;
use crate::clock::{now_ms, rfc3339};
use crate::dead_letters::DeadLetterReason;
use crate::dead_letters::store::{Failure, open_for_scheduled, reopen, resolve};
use crate::deliveries::fanout::{create_deliveries, subscribers};
use crate::events::{self, EventType};
use crate::ids::{ConversationId, DeadLetterId, MessageId, ScheduledMessageId};
use crate::jobs::queue::scheduler_notify;
use crate::jobs::runner::CatchUp;
use crate::jobs::{Background, Loop, LoopContext};
use crate::messages::store::{Dispatched, insert_dispatched};
use crate::state::AppState;
use crate::store::{DbResult, Tx};
use crate::webhooks::EndpointStatus;

/// Items claimed and dispatched together.
pub const BATCH: i64 = 500;
/// Batches of a backlog dispatched at once, each in its own transaction: on Postgres each has
/// its own connection and server process, so several keep both cores busy where one leaves the
/// database and this process waiting on each other (measured on 2 cores: two left ~18 % idle,
/// three cut the 10k-burst dispatch p99 by ~10 %). On SQLite their writes take turns at the
/// one writer; the rest of the work still overlaps.
const PARALLEL_BATCHES: usize = 3;
const POLL: Duration = Duration::from_millis(500);
/// The wait when items are due but another worker holds them all (it commits within a batch).
const HELD_ELSEWHERE: Duration = Duration::from_millis(50);

/// The scheduler loop, run beside every worker.
pub struct Scheduler;

impl Loop for Scheduler {
    async fn run(self, cx: LoopContext) {
        let LoopContext {
            app,
            background,
            catch_up,
        } = cx;
        run(&app, &background, &catch_up).await;
    }
}

/// An item taken for dispatch, with the tenant it belongs to.
#[derive(Debug, Clone)]
struct Item {
    id: ScheduledMessageId,
    tenant: Tenant,
    conversation_id: ConversationId,
    body: Option<String>,
    metadata: serde_json::Map<String, serde_json::Value>,
    send_at: i64,
    dead_letter_id: Option<DeadLetterId>,
}

impl Item {
    fn of(t: Taken, bg: &Background) -> Item {
        Item {
            tenant: Tenant::for_background(t.org_id, t.environment, bg),
            id: t.id,
            conversation_id: t.conversation_id,
            body: t.body,
            metadata: t.metadata.into_inner(),
            send_at: t.send_at,
            dead_letter_id: t.dead_letter_id,
        }
    }
}

/// Which items a dispatch transaction takes.
enum Take<'a> {
    /// Pending items that are due, earliest first (at most [`BATCH`]).
    Due,
    /// These items, if they are still pending (isolating a failed batch).
    Ids(&'a [ScheduledMessageId]),
}

async fn run(state: &AppState, bg: &Background, catch_up: &CatchUp) {
    let stop = state.shutdown.clone();
    let mut failures = 0u32;
    let backoff = |failures: u32| Duration::from_millis(200 * u64::from(failures.min(25)));
    loop {
        if stop.is_cancelled() {
            return;
        }
        let notified = scheduler_notify().notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        // A wake-up (an item scheduled, a replay) costs one look at the index of pending items;
        // items are taken only once one is due.
        let mut wait = match store::next_due(&state.db).await {
            Ok(t) => {
                let wait = t.map_or(POLL, |t| {
                    Duration::from_millis(u64::try_from(t - now_ms()).unwrap_or(0)).min(POLL)
                });
                if !wait.is_zero() {
                    failures = 0;
                }
                wait
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(error = %e, "looking for due scheduled messages failed");
                backoff(failures)
            }
        };
        if wait.is_zero() {
            match dispatch_due(state, bg, catch_up).await {
                // Due, but another worker holds every one of them: it commits shortly.
                Ok(0) => wait = HELD_ELSEWHERE,
                Ok(_) => failures = 0,
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "dispatching scheduled messages failed");
                    wait = backoff(failures);
                }
            }
            catch_up.send_if_modified(|since| since.take().is_some());
            if wait.is_zero() {
                continue;
            }
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = &mut notified => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Dispatches every item that is due: one batch, and if it came back full (a backlog),
/// [`PARALLEL_BATCHES`] batches at a time until one comes back short. Returns how many items
/// the first batch took.
async fn dispatch_due(
    state: &AppState,
    bg: &Background,
    catch_up: &CatchUp,
) -> anyhow::Result<usize> {
    let first = dispatch(state, bg, Take::Due).await?;
    if first < BATCH as usize {
        return Ok(first);
    }
    catch_up.send_if_modified(|since| {
        let starts = since.is_none();
        since.get_or_insert_with(std::time::Instant::now);
        starts
    });
    let mut lanes = tokio::task::JoinSet::new();
    for _ in 0..PARALLEL_BATCHES {
        let (state, bg) = (state.clone(), bg.clone());
        lanes.spawn(async move {
            while !state.shutdown.is_cancelled() {
                if dispatch(&state, &bg, Take::Due).await? < BATCH as usize {
                    break;
                }
            }
            anyhow::Ok(())
        });
    }
    // Every lane runs to its end (dropping the set would abort batches mid-transaction).
    let mut result = Ok(first);
    while let Some(lane) = lanes.join_next().await {
        if let Ok(Err(e)) = lane {
            result = Err(e);
        }
    }
    result
}

/// Takes a batch and dispatches it in one transaction; if that fails, isolates the failing
/// item. Returns how many items it took. An error means items are still pending (nothing could
/// be taken, or the database went away during a failed batch): the caller backs off.
async fn dispatch(state: &AppState, bg: &Background, which: Take<'_>) -> anyhow::Result<usize> {
    let started = std::time::Instant::now();
    let mut tx = state.db.begin().await?;
    let taken = match which {
        Take::Due => store::take_due(&mut tx, BATCH).await?,
        Take::Ids(ids) => store::take_ids(&mut tx, ids).await?,
    };
    if taken.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
    let items: Vec<Item> = taken.into_iter().map(|t| Item::of(t, bg)).collect();
    let outcome = match dispatch_in(state, &mut tx, &items).await {
        Ok(n) => tx.commit().await.map(|()| n).map_err(anyhow::Error::from),
        Err(e) => {
            // Before isolating: the halves need the rows (and on SQLite the writer) free.
            if let Err(r) = tx.rollback().await {
                tracing::warn!(error = %r, "rolling back a failed dispatch batch failed");
            }
            Err(e)
        }
    };
    match outcome {
        Ok(n) => {
            record_dispatched(&items, n);
            tracing::debug!(
                items = items.len(),
                ms = started.elapsed().as_millis() as u64,
                "dispatched a batch of scheduled messages"
            );
        }
        // The transaction rolled back: every item is pending again.
        Err(e) => {
            if !isolate(state, bg, &items, e).await {
                anyhow::bail!("a failed batch left scheduled messages pending");
            }
        }
    }
    Ok(items.len())
}

/// After `items` failed together: each half again on its own, down to single items, so a
/// poisoned item costs O(log n) extra transactions and only it fails. Returns whether every
/// item was settled (dispatched or failed); `false` leaves some pending for a later pass.
fn isolate<'a>(
    state: &'a AppState,
    bg: &'a Background,
    items: &'a [Item],
    error: anyhow::Error,
) -> std::pin::Pin<Box<dyn std::future::Future<Output = bool> + Send + 'a>> {
    Box::pin(async move {
        if let [item] = items {
            if error
                .downcast_ref::<crate::store::DbError>()
                .is_some_and(crate::store::DbError::is_unavailable)
            {
                // Not the item's fault: it stays pending and the next pass retries it.
                tracing::warn!(error = %error, item = %item.id, "dispatch failed for want of the database; will retry");
                return false;
            }
            let reason = DeadLetterReason::DispatchFailed;
            return match fail_item(state, item, reason, &error.to_string()).await {
                Ok(()) => true,
                Err(e) => {
                    tracing::error!(error = %e, item = %item.id, "could not record a dispatch failure; the item stays pending and will be retried");
                    false
                }
            };
        }
        tracing::warn!(error = %error, items = items.len(), "batch dispatch failed; isolating the failing item");
        let (a, b) = items.split_at(items.len() / 2);
        let mut settled = true;
        for half in [a, b] {
            let ids: Vec<ScheduledMessageId> = half.iter().map(|i| i.id.clone()).collect();
            if let Err(e) = dispatch(state, bg, Take::Ids(&ids)).await {
                tracing::warn!(error = %e, items = ids.len(), "could not retry part of a failed batch; it stays pending");
                settled = false;
            }
        }
        settled
    })
}

fn record_dispatched(items: &[Item], n: usize) {
    let now = now_ms();
    for i in items.iter().take(n) {
        let late = (now - i.send_at).max(0) as f64 / 1000.0;
        metrics::histogram!("rampart_scheduled_dispatch_lateness_seconds").record(late);
    }
    metrics::counter!("rampart_scheduled_dispatched_total").increment(n as u64);
}

/// Dispatches taken items, tenant by tenant, inside `tx`; returns how many were dispatched
/// (the others were canceled or failed, also inside `tx`).
async fn dispatch_in(state: &AppState, tx: &mut Tx, items: &[Item]) -> anyhow::Result<usize> {
    let mut groups: Vec<(&Tenant, Vec<&Item>)> = Vec::new();
    for i in items {
        match groups.iter_mut().find(|(t, _)| **t == i.tenant) {
            Some((_, g)) => g.push(i),
            None => groups.push((&i.tenant, vec![i])),
        }
    }
    let mut n = 0;
    for (t, group) in groups {
        n += dispatch_tenant(state, tx, t, group).await?;
    }
    Ok(n)
}

/// Dispatches items of one tenant inside `tx`, with a constant number of statements.
async fn dispatch_tenant(
    state: &AppState,
    tx: &mut Tx,
    t: &Tenant,
    items: Vec<&Item>,
) -> anyhow::Result<usize> {
    // Erased since scheduling: nothing to send.
    let (erased, items): (Vec<&Item>, Vec<&Item>) =
        items.into_iter().partition(|i| i.body.is_none());
    for i in &erased {
        let why = Some("the contact's data was erased");
        store::set_status(tx, &i.id, ScheduledStatus::Canceled, None, why).await?;
    }
    // The billing rule again, at execution. (Read in `tx`: a transaction that holds row locks
    // must not wait for a second connection, which requests blocked on those locks may hold.)
    let sub = crate::billing::store::subscription(tx, t.org()).await?;
    if let Err(r) = crate::billing::billable(&state.config, sub) {
        for i in &items {
            fail_in(tx, i, r.into(), "the org's subscription is not active").await?;
        }
        return Ok(0);
    }
    let Some(channel) = crate::webhooks::store::channel(tx, t).await? else {
        for i in &items {
            let reason = DeadLetterReason::ChannelNotConfigured;
            fail_in(tx, i, reason, "the org has no channel endpoint").await?;
        }
        return Ok(0);
    };
    // Messages: the id derives from the scheduled message's, so an item can never produce two.
    let ids: Vec<MessageId> = items
        .iter()
        .map(|i| MessageId::for_scheduled(&i.id))
        .collect();
    let mut event_items = Vec::with_capacity(items.len() * 2);
    for (i, id) in items.iter().zip(&ids) {
        let message = json!({
            "id": id, "conversation_id": i.conversation_id, "direction": "outbound",
            "body": i.body, "metadata": i.metadata, "status": "queued",
            "scheduled_message_id": i.id, "livemode": t.livemode(),
        });
        event_items.push((EventType::MessageCreated, message));
        event_items.push((
            EventType::ScheduledMessageDispatched,
            json!({ "id": i.id, "message_id": id, "send_at": rfc3339(i.send_at), "livemode": t.livemode() }),
        ));
    }
    let fan_out = subscribers(tx, t).await?;
    let events = events::emit_many(tx, t, fan_out, event_items).await?;
    let dead = matches!(
        channel.status,
        EndpointStatus::Failed | EndpointStatus::Disabled
    );
    let created: Vec<_> = events
        .iter()
        .filter(|e| e.event_type == EventType::MessageCreated)
        .map(|e| (channel.id.clone(), e))
        .collect();
    let deliveries = create_deliveries(tx, t, &created, dead).await?;
    let messages: Vec<Dispatched<'_>> = items
        .iter()
        .zip(&ids)
        .zip(&deliveries)
        .map(|((i, id), delivery)| Dispatched {
            id,
            conversation_id: &i.conversation_id,
            body: i.body.as_deref(),
            metadata: &i.metadata,
            delivery,
            scheduled: &i.id,
        })
        .collect();
    insert_dispatched(tx, t, &messages, dead).await?;
    for dl in items.iter().filter_map(|i| i.dead_letter_id.as_ref()) {
        resolve(tx, dl).await?;
    }
    Ok(items.len())
}

/// Fails one item inside `tx`: status `failed`, a dead letter (or its replay's dead letter
/// reopened) and the `scheduled_message.failed` event.
async fn fail_in(tx: &mut Tx, i: &Item, reason: DeadLetterReason, error: &str) -> DbResult<()> {
    let payload = json!({
        "scheduled_message_id": i.id, "conversation_id": i.conversation_id,
        "send_at": rfc3339(i.send_at), "body": i.body, "metadata": i.metadata,
    });
    let failure = Failure {
        reason,
        attempts: 1,
        last_error: Some(error),
    };
    let dl = match &i.dead_letter_id {
        Some(dl) => {
            reopen(tx, dl, &failure).await?;
            dl.clone()
        }
        None => open_for_scheduled(tx, &i.tenant, &payload, &failure).await?,
    };
    store::set_status(tx, &i.id, ScheduledStatus::Failed, Some(&dl), Some(error)).await?;
    let fan_out = subscribers(tx, &i.tenant).await?;
    let data = json!({ "id": i.id, "reason": reason, "error": error });
    events::emit(
        tx,
        &i.tenant,
        fan_out,
        EventType::ScheduledMessageFailed,
        data,
    )
    .await?;
    Ok(())
}

/// Fails one item in a transaction of its own (after its batch failed).
async fn fail_item(
    state: &AppState,
    i: &Item,
    reason: DeadLetterReason,
    error: &str,
) -> DbResult<()> {
    let mut tx = state.db.begin().await?;
    // Only if it is still pending and no other worker holds it.
    if store::take_ids(&mut tx, std::slice::from_ref(&i.id))
        .await?
        .is_empty()
    {
        return tx.rollback().await;
    }
    tracing::warn!(item = %i.id, reason = %reason, error, "scheduled message failed");
    fail_in(&mut tx, i, reason, error).await?;
    tx.commit().await
}
