//! An open transaction on either store, and the writes it may defer.
//!
//! A deferred write ([`Tx::defer`], [`Tx::defer_merged`]) is one whose outcome the caller does
//! not need: it goes with the transaction's next statement or its `COMMIT` instead of costing
//! a round trip of its own. It names its [`Table`], so an error it causes names it too
//! ([`super::DbError::Deferred`]), and the two entry points say at the call whether a write
//! may be merged with others into one Postgres statement.

use super::deferred::{Deferred, PgBegin, Table};
use super::error::DbResult;
use super::exec::Exec;
use super::notify;
use super::pg_tx::PgTx;
use super::query::{Arg, Dialect, Q};
use super::row::Row;
use super::sql_text::insert_statements;
use super::sqlite_tx::SqliteTx;
use super::writer::WriterConn;

/// An open transaction on either store. Dropped without `commit` it rolls back.
pub struct Tx {
    inner: TxInner,
    after_commit: Vec<Box<dyn FnOnce() + Send>>,
    notifier: Option<notify::Notifier>,
    /// Rows of [`Tx::prefetch`]ed reads, by [`Prefetched`] slot (`None`: not read yet).
    pub(crate) prefetched: Vec<Option<Vec<Row>>>,
}

/// A read asked for ahead of need: see [`Tx::prefetch`].
#[must_use]
#[derive(Debug)]
pub struct Prefetched(usize);

pub(crate) enum TxInner {
    Sqlite(SqliteTx),
    Postgres(PgTx),
}

impl Tx {
    fn new(inner: TxInner, notifier: Option<notify::Notifier>) -> Tx {
        Tx {
            inner,
            after_commit: Vec::new(),
            notifier,
            prefetched: Vec::new(),
        }
    }

    pub(crate) fn sqlite_writer(conn: WriterConn) -> Tx {
        Tx::new(TxInner::Sqlite(SqliteTx::writer(conn)), None)
    }

    pub(crate) fn sqlite_snapshot(conn: sqlx::pool::PoolConnection<sqlx::Sqlite>) -> Tx {
        Tx::new(TxInner::Sqlite(SqliteTx::snapshot(conn)), None)
    }

    pub(crate) fn postgres(
        conn: sqlx::pool::PoolConnection<sqlx::Postgres>,
        begin: PgBegin,
        n: &notify::Notifier,
    ) -> Tx {
        Tx::new(TxInner::Postgres(PgTx::new(conn, begin)), Some(n.clone()))
    }

    pub(crate) fn postgres_snapshot(
        t: sqlx::Transaction<'static, sqlx::Postgres>,
        n: &notify::Notifier,
    ) -> Tx {
        Tx::new(TxInner::Postgres(PgTx::open(t)), Some(n.clone()))
    }

    /// Runs `f` once the transaction has committed (never if it rolls back): wake-ups of
    /// workers for the jobs it enqueued, cache evictions.
    pub fn after_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(f));
    }

    /// On Postgres, has every instance LISTENing on `channel` woken once the transaction has
    /// committed (see [`notify`] for why not `pg_notify` in the transaction). A no-op on
    /// SQLite, where one process is the only writer and wakes its own in-process.
    pub fn notify_after_commit(&mut self, channel: &'static str) {
        if let Some(n) = self.notifier.clone() {
            self.after_commit(move || n.request(channel));
        }
    }

    /// A read whose rows the caller will want later in the transaction ([`Tx::prefetched`]):
    /// on SQLite it is sent with the next statement, so it costs no round trip of its own
    /// while the writer is held; on Postgres it runs now. Either way it sees the
    /// transaction's writes asked for before it (deferred ones included) and none after.
    pub async fn prefetch(&mut self, q: Q) -> DbResult<Prefetched> {
        let slot = self.prefetched.len();
        match &mut self.inner {
            TxInner::Sqlite(t) => {
                t.queue_prefetch(q, slot);
                self.prefetched.push(None);
            }
            TxInner::Postgres(_) => {
                let rows = self.query_rows(q).await?;
                self.prefetched.push(Some(rows));
            }
        }
        Ok(Prefetched(slot))
    }

    /// The rows of a [`Tx::prefetch`], sending it now if it has not gone yet.
    pub async fn prefetched(&mut self, p: Prefetched) -> DbResult<Vec<Row>> {
        if self.prefetched.get(p.0).is_some_and(Option::is_none)
            && let TxInner::Sqlite(t) = &mut self.inner
        {
            t.flush(&mut self.prefetched).await?;
        }
        self.prefetched
            .get_mut(p.0)
            .and_then(Option::take)
            .ok_or(super::DbError::Other(sqlx::Error::RowNotFound))
    }

    /// A write to `table` whose outcome the caller does not need: sent with (SQLite) or just
    /// before (Postgres) the transaction's next statement or its `COMMIT`, as a statement of
    /// its own. If it fails, that statement fails and the error names this write.
    pub async fn defer(&mut self, table: Table, q: Q) -> DbResult<()> {
        self.push_deferred(Deferred {
            q,
            table,
            mergeable: false,
        });
        Ok(())
    }

    /// [`Tx::defer`] for a write that changes `table` only and reads nothing (a plain
    /// `INSERT … VALUES`, or an `UPDATE`/`DELETE` without sub-selects or `RETURNING`): on
    /// Postgres consecutive such writes to different tables go as one statement, each but the
    /// last a data-modifying `WITH` clause. They run on one snapshot, so none may depend on
    /// another's rows; a write to a table already in the run starts a new statement.
    pub async fn defer_merged(&mut self, table: Table, q: Q) -> DbResult<()> {
        self.push_deferred(Deferred {
            q,
            table,
            mergeable: true,
        });
        Ok(())
    }

    /// Multi-row inserts into `table` ([`super::insert_many`]), deferred and mergeable.
    pub async fn defer_insert_many(
        &mut self,
        table: Table,
        head: &'static str,
        tail: &'static str,
        rows: Vec<Vec<Arg>>,
    ) -> DbResult<()> {
        for q in insert_statements(head, tail, rows) {
            self.defer_merged(table, q).await?;
        }
        Ok(())
    }

    fn push_deferred(&mut self, d: Deferred) {
        match &mut self.inner {
            TxInner::Sqlite(t) => t.queue_deferred(d),
            TxInner::Postgres(t) => t.queue_deferred(d),
        }
    }

    pub async fn commit(mut self) -> DbResult<()> {
        match self.inner {
            TxInner::Sqlite(mut t) => t.commit(&mut self.prefetched).await?,
            TxInner::Postgres(t) => t.commit().await?,
        }
        for f in self.after_commit {
            f();
        }
        Ok(())
    }

    pub async fn rollback(self) -> DbResult<()> {
        match self.inner {
            TxInner::Sqlite(mut t) => t.rollback().await,
            TxInner::Postgres(t) => t.rollback().await,
        }
    }

    /// Runs a multi-statement script (migrations) inside the transaction.
    pub async fn run_script(&mut self, script: &'static str) -> DbResult<()> {
        match &mut self.inner {
            TxInner::Sqlite(t) => t.run_script(script, &mut self.prefetched).await,
            TxInner::Postgres(t) => t.run_script(script).await,
        }
    }
}

impl Exec for Tx {
    fn dialect(&self) -> Dialect {
        match self.inner {
            TxInner::Sqlite(_) => Dialect::Sqlite,
            TxInner::Postgres(_) => Dialect::Postgres,
        }
    }

    async fn query_rows(&mut self, q: Q) -> DbResult<Vec<Row>> {
        match &mut self.inner {
            TxInner::Sqlite(t) => Ok(t.run(q, &mut self.prefetched).await?.0),
            TxInner::Postgres(t) => t.fetch_all(q).await,
        }
    }

    async fn query_row(&mut self, q: Q) -> DbResult<Option<Row>> {
        match &mut self.inner {
            TxInner::Sqlite(t) => Ok(t.run(q, &mut self.prefetched).await?.0.into_iter().next()),
            TxInner::Postgres(t) => t.fetch_optional(q).await,
        }
    }

    async fn execute(&mut self, q: Q) -> DbResult<u64> {
        match &mut self.inner {
            TxInner::Sqlite(t) => Ok(t.run(q, &mut self.prefetched).await?.1),
            TxInner::Postgres(t) => t.execute(q).await,
        }
    }
}
