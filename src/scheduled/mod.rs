//! Scheduled messages, and the scheduler that dispatches them.
//!
//! The `scheduled_messages` table is its own queue: a worker takes due items in batches,
//! sleeping until the next `send_at` rather than ticking by the minute. A batch is taken and
//! dispatched in one transaction with a constant number of statements (the items marked
//! dispatched under row locks — Postgres `SKIP LOCKED`, SQLite's single writer — then message
//! rows, events, deliveries and jobs inserted many rows at a time), so an item is dispatched
//! exactly once: a worker that dies mid-batch leaves a rolled-back transaction and the items
//! pending. If the batch fails, its halves are retried on their own, down to single items, so
//! one poisoned item never holds up the others; it alone fails, with a dead letter.

pub mod routes;

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Map, Value, json};

use crate::access::principal::{Environment, Tenant};
use crate::app::AppState;
use crate::clock::{now_ms, rfc3339};
use crate::ids::{OrgId, new_id};
use crate::jobs::queue::scheduler_notify;
use crate::store::{Arg, DbResult, Dialect, Exec, Row, Tx, insert_many, placeholders, sql};
use crate::webhooks::dead_letters::DeadLetter;

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

#[derive(Debug, Clone)]
pub struct Scheduled {
    pub id: String,
    pub conversation_id: String,
    pub body: Option<String>,
    pub metadata: Value,
    pub send_at: i64,
    pub status: String,
    pub message_id: Option<String>,
    pub last_error: Option<String>,
    pub livemode: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub dispatched_at: Option<i64>,
}

pub const COLUMNS: &str = "id, conversation_id, body, metadata, send_at, status, message_id, last_error, environment, created_at, updated_at, dispatched_at";

impl Scheduled {
    fn from_row(r: &Row) -> DbResult<Scheduled> {
        Ok(Scheduled {
            id: r.get("id")?,
            conversation_id: r.get("conversation_id")?,
            body: r.get("body")?,
            metadata: r.json("metadata")?,
            send_at: r.get("send_at")?,
            status: r.get("status")?,
            message_id: r.get("message_id")?,
            last_error: r.get("last_error")?,
            livemode: r.get::<String>("environment")? == "live",
            created_at: r.get("created_at")?,
            updated_at: r.get("updated_at")?,
            dispatched_at: r.get("dispatched_at")?,
        })
    }
}

pub async fn get(ex: &mut impl Exec, t: &Tenant, id: &str) -> DbResult<Option<Scheduled>> {
    let row = crate::store::sql_built(format!(
        "SELECT {COLUMNS} FROM scheduled_messages WHERE org_id = $1 AND environment = $2 AND id = $3"
    ))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(id)
    .fetch_optional(ex)
    .await?;
    row.as_ref().map(Scheduled::from_row).transpose()
}

pub async fn insert(
    ex: &mut impl Exec,
    t: &Tenant,
    conversation_id: &str,
    body: &str,
    metadata: &Map<String, Value>,
    send_at: i64,
) -> DbResult<Scheduled> {
    let now = now_ms();
    let row = crate::store::sql_built(format!(
        "INSERT INTO scheduled_messages (id, org_id, environment, conversation_id, body, metadata, send_at, status, created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $8) RETURNING {COLUMNS}"
    ))
    .bind(new_id("sch"))
    .bind(t.org())
    .bind(t.env().as_str())
    .bind(conversation_id)
    .bind(body)
    .bind(Value::Object(metadata.clone()).to_string())
    .bind(send_at)
    .bind(now)
    .fetch_one(ex)
    .await?;
    Scheduled::from_row(&row)
}

/// Cancels a pending item. `false`: it is no longer pending (the dispatcher may have it).
pub async fn cancel(ex: &mut impl Exec, t: &Tenant, id: &str) -> DbResult<bool> {
    let n = sql("UPDATE scheduled_messages SET status = 'canceled', updated_at = $4 WHERE org_id = $1 AND environment = $2 AND id = $3 AND status = 'pending'")
        .bind(t.org())
        .bind(t.env().as_str())
        .bind(id)
        .bind(now_ms())
        .execute(ex)
        .await?;
    Ok(n == 1)
}

/// An item taken for dispatch.
#[derive(Debug, Clone)]
struct Item {
    id: String,
    tenant: Tenant,
    conversation_id: String,
    body: Option<String>,
    metadata: Map<String, Value>,
    send_at: i64,
    dead_letter_id: Option<String>,
}

/// Which items a dispatch transaction takes.
enum Take<'a> {
    /// Pending items that are due, earliest first (at most [`BATCH`]).
    Due,
    /// These items, if they are still pending (isolating a failed batch).
    Ids(&'a [String]),
}

/// Takes items for dispatch inside `tx`: marks them `dispatched` and returns them. The row
/// locks this takes (Postgres `SKIP LOCKED`; SQLite's single writer) hold until `tx` ends, so
/// no other worker can take them; if `tx` rolls back they are pending again, with nothing of
/// them left behind. Claim and effect in one transaction is what makes dispatch exactly once.
async fn take(tx: &mut Tx, which: Take<'_>) -> DbResult<Vec<Item>> {
    let now = now_ms();
    let lock = match tx.dialect() {
        Dialect::Postgres => " FOR UPDATE SKIP LOCKED",
        Dialect::Sqlite => "",
    };
    let filter = match which {
        Take::Due => format!("status = 'pending' AND send_at <= $1 ORDER BY send_at LIMIT {BATCH}"),
        Take::Ids(ids) => format!(
            "status = 'pending' AND id IN ({})",
            placeholders(2, ids.len())
        ),
    };
    let mut q = crate::store::sql_built(format!(
        "UPDATE scheduled_messages SET status = 'dispatched', message_id = 'msg_' || substr(id, 5), dispatched_at = $1, updated_at = $1,
                lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
         WHERE id IN (SELECT id FROM scheduled_messages WHERE {filter}{lock})
         RETURNING id, org_id, environment, conversation_id, body, metadata, send_at, dead_letter_id"
    ))
    .bind(now);
    if let Take::Ids(ids) = which {
        for id in ids {
            q = q.bind(id);
        }
    }
    let rows = q.fetch_all(tx).await?;
    let mut items = rows
        .iter()
        .map(|r| {
            let env =
                Environment::parse(&r.get::<String>("environment")?).unwrap_or(Environment::Test);
            Ok(Item {
                id: r.get("id")?,
                tenant: Tenant::for_background(OrgId::from_trusted(r.get("org_id")?), env),
                conversation_id: r.get("conversation_id")?,
                body: r.get("body")?,
                metadata: r.json("metadata")?.as_object().cloned().unwrap_or_default(),
                send_at: r.get("send_at")?,
                dead_letter_id: r.get("dead_letter_id")?,
            })
        })
        .collect::<DbResult<Vec<Item>>>()?;
    // RETURNING does not keep the subquery's order.
    items.sort_by_key(|i| i.send_at);
    Ok(items)
}

/// Tells this worker's job loop when the scheduler is working through a backlog of due items
/// (a batch came back full), and since when.
///
/// Dispatch has a deadline (SPEC §4: within 1 s of `send_at`) and costs a few rows per item;
/// a delivery costs an HTTP request and has no deadline. When thousands of items fall due at
/// once, the deliveries of the first batches would take most of the CPU from the dispatch of
/// the rest, so the job loop claims nothing new while the scheduler catches up, for at most
/// [`CATCH_UP_MAX`]; then both go on together, so a scheduler that is always behind cannot
/// starve deliveries. Running jobs carry on either way.
pub type CatchUp = tokio::sync::watch::Sender<Option<std::time::Instant>>;

/// The longest the job loop holds back for a scheduler that is catching up.
pub const CATCH_UP_MAX: Duration = Duration::from_secs(2);

/// The scheduler loop of a worker: runs until shutdown.
pub async fn run(state: AppState, catch_up: CatchUp) {
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
        let mut wait = match next_due(&state).await {
            Ok(wait) => {
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
            match dispatch_due(&state, &catch_up).await {
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
async fn dispatch_due(state: &AppState, catch_up: &CatchUp) -> anyhow::Result<usize> {
    let first = dispatch(state, Take::Due).await?;
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
        let state = state.clone();
        lanes.spawn(async move {
            while !state.shutdown.is_cancelled() {
                if dispatch(&state, Take::Due).await? < BATCH as usize {
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

async fn next_due(state: &AppState) -> DbResult<Duration> {
    let t: Option<i64> =
        sql("SELECT MIN(send_at) AS t FROM scheduled_messages WHERE status = 'pending'")
            .fetch_one(&mut state.db.clone())
            .await?
            .get("t")?;
    Ok(match t {
        Some(t) => Duration::from_millis(u64::try_from(t - now_ms()).unwrap_or(0)).min(POLL),
        None => POLL,
    })
}

/// Takes a batch and dispatches it in one transaction; if that fails, isolates the failing
/// item. Returns how many items it took. An error means items are still pending (nothing could
/// be taken, or the database went away during a failed batch): the caller backs off.
async fn dispatch(state: &AppState, which: Take<'_>) -> anyhow::Result<usize> {
    let started = std::time::Instant::now();
    let mut tx = state.db.begin().await?;
    let items = take(&mut tx, which).await?;
    if items.is_empty() {
        tx.rollback().await?;
        return Ok(0);
    }
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
            if !isolate(state, &items, e).await {
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
            return match fail_item(state, item, "dispatch_failed", &error.to_string()).await {
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
            let ids: Vec<String> = half.iter().map(|i| i.id.clone()).collect();
            if let Err(e) = dispatch(state, Take::Ids(&ids)).await {
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
    let mut groups: BTreeMap<(String, &'static str), Vec<&Item>> = BTreeMap::new();
    for i in items {
        groups
            .entry((i.tenant.org().to_string(), i.tenant.env().as_str()))
            .or_default()
            .push(i);
    }
    let mut n = 0;
    for (_, group) in groups {
        n += dispatch_tenant(state, tx, group).await?;
    }
    Ok(n)
}

/// Dispatches items of one tenant inside `tx`, with a constant number of statements.
async fn dispatch_tenant(
    state: &AppState,
    tx: &mut Tx,
    items: Vec<&Item>,
) -> anyhow::Result<usize> {
    let t = items[0].tenant.clone();
    // Erased since scheduling: nothing to send.
    let (erased, items): (Vec<&Item>, Vec<&Item>) =
        items.into_iter().partition(|i| i.body.is_none());
    for i in &erased {
        set_status(
            tx,
            &i.id,
            "canceled",
            None,
            Some("the contact's data was erased"),
        )
        .await?;
    }
    // The billing rule again, at execution. (Read in `tx`: a transaction that holds row locks
    // must not wait for a second connection, which requests blocked on those locks may hold.)
    if let Err(r) = crate::traffic::billing::assert_billable(tx, &state.config, t.org()).await? {
        for i in &items {
            fail_in(tx, i, r.code(), "the org's subscription is not active").await?;
        }
        return Ok(0);
    }
    let Some(channel) = crate::webhooks::endpoints::channel(tx, &t).await? else {
        for i in &items {
            fail_in(
                tx,
                i,
                "channel_not_configured",
                "the org has no channel endpoint",
            )
            .await?;
        }
        return Ok(0);
    };
    let now = now_ms();
    // Messages: the id derives from the scheduled message's, so an item can never produce two.
    let messages: Vec<crate::messages::Message> = items
        .iter()
        .map(|i| crate::messages::Message {
            id: format!("msg_{}", i.id.trim_start_matches("sch_")),
            conversation_id: i.conversation_id.clone(),
            direction: "outbound".into(),
            body: i.body.clone(),
            metadata: Value::Object(i.metadata.clone()),
            status: "queued".into(),
            delivery_id: None,
            scheduled_message_id: Some(i.id.clone()),
            error: None,
            livemode: t.livemode(),
            created_at: now,
            updated_at: now,
            sent_at: None,
        })
        .collect();
    let mut event_items = Vec::with_capacity(items.len() * 2);
    for (i, m) in items.iter().zip(&messages) {
        event_items.push(("message.created", m.event_data()));
        event_items.push((
            "scheduled_message.dispatched",
            json!({ "id": i.id, "message_id": m.id, "send_at": rfc3339(i.send_at), "livemode": t.livemode() }),
        ));
    }
    let events = crate::events::emit_many(tx, &t, event_items).await?;
    let dead = matches!(channel.status.as_str(), "failed" | "disabled");
    let created: Vec<(String, &crate::events::Event)> = events
        .iter()
        .filter(|e| e.event_type == "message.created")
        .map(|e| (channel.id.clone(), e))
        .collect();
    let deliveries = crate::webhooks::fanout::create_deliveries(tx, &t, &created, dead).await?;
    let rows = messages
        .iter()
        .zip(&deliveries)
        .map(|(m, d)| {
            vec![
                Arg::from(&m.id),
                Arg::from(t.org()),
                Arg::from(t.env().as_str()),
                Arg::from(&m.conversation_id),
                Arg::from("outbound"),
                Arg::from(m.body.clone()),
                Arg::from(&m.metadata),
                Arg::from(if dead { "failed" } else { "queued" }),
                Arg::from(d),
                Arg::from(m.scheduled_message_id.clone()),
                Arg::from(now),
                Arg::from(now),
            ]
        })
        .collect();
    insert_many(
        tx,
        "INSERT INTO messages (id, org_id, environment, conversation_id, direction, body, metadata, status, delivery_id, scheduled_message_id, created_at, updated_at)",
        "",
        rows,
    )
    .await?;
    for i in &items {
        if let Some(dl) = &i.dead_letter_id {
            crate::webhooks::dead_letters::resolve(tx, dl).await?;
        }
    }
    Ok(items.len())
}

async fn set_status(
    tx: &mut Tx,
    id: &str,
    status: &str,
    dead_letter: Option<&str>,
    error: Option<&str>,
) -> DbResult<()> {
    // Taking an item marked it dispatched; it was not.
    sql("UPDATE scheduled_messages SET status = $2, last_error = $3, dead_letter_id = COALESCE($4, dead_letter_id), updated_at = $5,
            message_id = NULL, dispatched_at = NULL WHERE id = $1")
        .bind(id)
        .bind(status)
        .bind(error.map(str::to_owned))
        .bind(dead_letter.map(str::to_owned))
        .bind(now_ms())
        .execute(tx)
        .await?;
    Ok(())
}

/// Fails one item inside `tx`: status `failed`, a dead letter (or its replay's dead letter
/// reopened) and the `scheduled_message.failed` event.
async fn fail_in(tx: &mut Tx, i: &Item, reason: &str, error: &str) -> DbResult<()> {
    let payload = json!({
        "scheduled_message_id": i.id, "conversation_id": i.conversation_id,
        "send_at": rfc3339(i.send_at), "body": i.body, "metadata": i.metadata,
    });
    let dl = match &i.dead_letter_id {
        Some(dl) => {
            crate::webhooks::dead_letters::reopen(tx, dl, reason, 1, Some(error)).await?;
            dl.clone()
        }
        None => {
            let id = new_id("dl");
            let now = now_ms();
            sql("INSERT INTO dead_letters (id, org_id, environment, source, event_type, payload, reason, status, attempts, last_error, created_at, updated_at)
                 VALUES ($1, $2, $3, 'scheduled_message', 'scheduled_message.failed', $4, $5, 'open', 1, $6, $7, $7)")
                .bind(&id)
                .bind(i.tenant.org())
                .bind(i.tenant.env().as_str())
                .bind(&payload)
                .bind(reason)
                .bind(error)
                .bind(now)
                .execute(tx)
                .await?;
            metrics::counter!("rampart_dead_letters_total", "reason" => reason.to_owned())
                .increment(1);
            id
        }
    };
    set_status(tx, &i.id, "failed", Some(&dl), Some(error)).await?;
    crate::events::emit(
        tx,
        &i.tenant,
        "scheduled_message.failed",
        json!({ "id": i.id, "reason": reason, "error": error }),
    )
    .await?;
    Ok(())
}

/// Fails one item in a transaction of its own (after its batch failed).
async fn fail_item(state: &AppState, i: &Item, reason: &str, error: &str) -> DbResult<()> {
    let mut tx = state.db.begin().await?;
    // Only if it is still pending and no other worker holds it.
    if take(&mut tx, Take::Ids(std::slice::from_ref(&i.id)))
        .await?
        .is_empty()
    {
        return tx.rollback().await;
    }
    tracing::warn!(item = %i.id, reason, error, "scheduled message failed");
    fail_in(&mut tx, i, reason, error).await?;
    tx.commit().await
}

/// Replays a scheduled message's dead letter: the item is pending again, due now.
pub async fn replay_dead_letter(
    tx: &mut Tx,
    t: &Tenant,
    dl: &DeadLetter,
) -> DbResult<Option<String>> {
    let Some(id) = dl.payload["scheduled_message_id"].as_str() else {
        return Ok(None);
    };
    let n = sql("UPDATE scheduled_messages SET status = 'pending', send_at = $4, last_error = NULL, dead_letter_id = $5, updated_at = $4
                 WHERE org_id = $1 AND environment = $2 AND id = $3 AND status = 'failed'")
        .bind(t.org())
        .bind(t.env().as_str())
        .bind(id)
        .bind(now_ms())
        .bind(&dl.id)
        .execute(tx)
        .await?;
    if n == 0 {
        return Ok(None);
    }
    crate::jobs::queue::wake_scheduler_after_commit(tx);
    Ok(Some(id.to_owned()))
}
