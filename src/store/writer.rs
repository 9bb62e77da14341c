//! SQLite's one writer connection, handed from transaction to transaction through a fair lock
//! instead of going back to sqlx's pool after each, and the group commit that lets
//! transactions which queued behind each other share one durable `COMMIT`.
//!
//! Why the lock: every write waits for this one connection, so what it costs to pass it on is
//! paid by all of them in turn. Through the pool that was a spawned task and a ping round trip
//! to the connection's thread on release, then another ping on acquire, and only then the next
//! transaction's first statement. Through the lock it is one wake-up.
//!
//! Why the group: with `synchronous = FULL` every `COMMIT` waits for the disk, and the writer
//! is held while it does. A transaction that ends while others are waiting for the writer
//! leaves the outer transaction open ([`WriterConn::join_group`]) and waits; the next ones run
//! inside it, each under a savepoint, and the one that ends with nobody waiting (or the
//! [`GROUP_MAX`]th) commits them all. Nobody is answered before the `COMMIT` that holds their
//! writes is durable, and a transaction that ends with nobody waiting commits alone, as it
//! would without groups.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use sqlx::pool::PoolConnection;
use sqlx::{Sqlite, SqliteConnection, SqlitePool};
use tokio::sync::{Mutex, OwnedMutexGuard, oneshot};

use super::{DbError, DbResult};

/// The most transactions one group commit holds: bounds how long the first of them waits.
const GROUP_MAX: usize = 32;

/// How long a transaction in a group waits for its `COMMIT` before it takes the writer and
/// commits the group itself. It is a backstop: the group is committed by the transaction that
/// ends with nobody waiting, unless every one that was waiting gave up meanwhile.
const GROUP_BACKSTOP: Duration = Duration::from_millis(50);

/// The writer: its pool (of one connection) and the connection, once taken from it.
#[derive(Clone)]
pub struct Writer {
    pool: SqlitePool,
    held: Arc<Mutex<Slot>>,
    /// Transactions waiting for the writer: whether ending one should commit its group.
    waiting: Arc<AtomicUsize>,
    groups: Arc<AtomicU64>,
    timeout: Duration,
}

/// What the lock guards: the connection, and the group committing on it, if one is open.
#[derive(Default)]
struct Slot {
    conn: Option<PoolConnection<Sqlite>>,
    group: Option<Group>,
}

/// An outer transaction left open for the transactions queued behind the one that began it.
struct Group {
    id: u64,
    /// Whoever finished inside the group, waiting for its `COMMIT` (`true`: durable).
    members: Vec<oneshot::Sender<bool>>,
}

/// The writer connection, held: the next transaction waits until this is dropped.
pub struct WriterConn {
    writer: Writer,
    guard: OwnedMutexGuard<Slot>,
    /// Taken out of the guard while held; `None` once discarded.
    conn: Option<PoolConnection<Sqlite>>,
}

/// A finished transaction's wait for the group commit that holds its writes.
pub struct GroupWait {
    writer: Writer,
    id: u64,
    done: oneshot::Receiver<bool>,
}

/// Counts a transaction as waiting for the writer until it has it (or gives up).
struct Waiting(Arc<AtomicUsize>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Writer {
    /// `timeout`: how long a write waits for the connection before it gives up (as the pool's
    /// acquire timeout did).
    pub fn new(pool: SqlitePool, timeout: Duration) -> Writer {
        Writer {
            pool,
            held: Arc::new(Mutex::new(Slot::default())),
            waiting: Arc::new(AtomicUsize::new(0)),
            groups: Arc::new(AtomicU64::new(0)),
            timeout,
        }
    }

    /// Waits for the connection (first come, first served).
    pub async fn acquire(&self) -> DbResult<WriterConn> {
        self.waiting.fetch_add(1, Ordering::SeqCst);
        let waiting = Waiting(self.waiting.clone());
        let locked = tokio::time::timeout(self.timeout, self.held.clone().lock_owned()).await;
        drop(waiting);
        let mut guard = locked.map_err(|_| DbError::Unavailable(sqlx::Error::PoolTimedOut))?;
        let conn = match guard.conn.take() {
            Some(c) => c,
            // The first write, or the one after a connection was discarded.
            None => self.pool.acquire().await?,
        };
        Ok(WriterConn {
            writer: self.clone(),
            guard,
            conn: Some(conn),
        })
    }

    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// Closes the connection (after any transaction holding it) and the pool. A group still
    /// open is rolled back with the connection; nobody in it has been answered.
    pub async fn close(&self) {
        let mut slot = self.held.lock().await;
        drop(slot.conn.take());
        slot.group = None;
        drop(slot);
        self.pool.close().await;
    }
}

impl WriterConn {
    pub fn get(&mut self) -> DbResult<&mut SqliteConnection> {
        self.conn
            .as_deref_mut()
            .ok_or(DbError::Other(sqlx::Error::PoolClosed))
    }

    /// Whether a group's outer transaction is open on the connection: a transaction then runs
    /// under a savepoint inside it.
    pub fn in_group(&self) -> bool {
        self.guard.group.is_some()
    }

    /// Whether the transaction ending now should commit (its group, if one is open) rather
    /// than leave the outer transaction open for those waiting.
    pub fn should_commit(&self) -> bool {
        self.writer.waiting.load(Ordering::SeqCst) == 0
            || self
                .guard
                .group
                .as_ref()
                .is_some_and(|g| g.members.len() + 1 >= GROUP_MAX)
    }

    /// After a `COMMIT` that ended the group (or failed to): tells everyone in it.
    pub fn group_ended(&mut self, durable: bool) {
        if let Some(g) = self.guard.group.take() {
            let outcome = if durable { "committed" } else { "failed" };
            // The members and the transaction that ended the group.
            metrics::histogram!("rampart_sqlite_group_commit_transactions", "outcome" => outcome)
                .record((g.members.len() + 1) as f64);
            for m in g.members {
                // A member that stopped waiting (its request was cancelled) needs no answer.
                let _ = m.send(durable);
            }
        }
    }

    /// Leaves the outer transaction open with this transaction's writes in it, hands the
    /// writer on, and returns the wait for the group's `COMMIT`.
    pub fn join_group(mut self) -> GroupWait {
        let (tx, done) = oneshot::channel();
        let writer = self.writer.clone();
        let group = self.guard.group.get_or_insert_with(|| Group {
            id: writer.groups.fetch_add(1, Ordering::Relaxed),
            members: Vec::new(),
        });
        group.members.push(tx);
        let id = group.id;
        drop(self);
        GroupWait { writer, id, done }
    }

    /// Commits the open group now (the transaction ending in it rolled back, or a member
    /// stopped waiting). If the `COMMIT` fails, everyone in the group is told so.
    pub async fn commit_group(&mut self) -> DbResult<()> {
        if !self.in_group() {
            return Ok(());
        }
        let committed = sqlx::query("COMMIT").execute(self.get()?).await;
        self.group_ended(committed.is_ok());
        if let Err(e) = committed {
            self.abandon_group();
            return Err(e.into());
        }
        Ok(())
    }

    /// A group that cannot commit: roll it back, or close the connection if even that fails,
    /// and tell everyone in it that their writes are lost.
    pub fn abandon_group(&mut self) {
        self.group_ended(false);
        // A rollback here would need the runtime; closing the connection rolls back too.
        if let Some(mut c) = self.conn.take() {
            c.close_on_drop();
        }
    }

    /// The connection's state is unknown (say a rollback failed): close it; the next write
    /// takes a new one from the pool. A group open on it is lost, and told so.
    pub fn discard(mut self) {
        self.abandon_group();
    }
}

impl Drop for WriterConn {
    fn drop(&mut self) {
        self.guard.conn = self.conn.take();
    }
}

impl GroupWait {
    /// Waits until the group holding this transaction's writes has committed. If everyone who
    /// was to commit it gave up, commits it after [`GROUP_BACKSTOP`].
    pub async fn committed(mut self) -> DbResult<()> {
        let durable = match tokio::time::timeout(GROUP_BACKSTOP, &mut self.done).await {
            Ok(outcome) => outcome.unwrap_or(false),
            Err(_) => {
                let mut w = self.writer.acquire().await?;
                if w.guard.group.as_ref().is_some_and(|g| g.id == self.id) {
                    w.commit_group().await?;
                }
                drop(w);
                self.done.await.unwrap_or(false)
            }
        };
        if durable {
            Ok(())
        } else {
            Err(DbError::Unavailable(sqlx::Error::Protocol(
                "the group commit holding this write failed".into(),
            )))
        }
    }
}
