//! A Postgres transaction that sends as few statements as its caller allows.
//!
//! It always runs at `READ COMMITTED`, set by its own `BEGIN`, whatever the server's
//! `default_transaction_isolation`. The `BEGIN` goes just before the first statement (or,
//! for [`super::Db::begin_at_first_write`], the first one not declared a read). Deferred
//! writes wait for the next statement or the `COMMIT`; consecutive ones declared mergeable
//! ([`super::Tx::defer_merged`]) that write different tables go as one statement.
//!
//! Why: the database's CPU bounds Postgres throughput, and for a small write most of it is the
//! statement itself (a round trip through the kernel and TLS, bind-execute, a snapshot), not
//! the row (docs/BENCHMARKS.md, "Postgres statements").

use sqlx::Postgres;

use super::deferred::{Deferred, PgBegin};
use super::error::{DbError, DbResult};
use super::query::{Access, Q};
use super::row::Row;
use super::sql_text::merged;

const BEGIN: &str = "BEGIN ISOLATION LEVEL READ COMMITTED";

/// The most binds one merged statement carries (Postgres allows 65535).
const MERGED_BINDS: usize = 30_000;

pub(crate) struct PgTx {
    conn: PgConn,
    pending: Vec<Deferred>,
    begin: PgBegin,
}

enum PgConn {
    /// No `BEGIN` sent yet.
    Idle(sqlx::pool::PoolConnection<Postgres>),
    Open(sqlx::Transaction<'static, Postgres>),
    /// Lost to a failed `BEGIN`.
    Gone,
}

/// A statement to send for the deferred writes, with the names of the writes it carries.
struct Outgoing {
    q: Q,
    writes: Vec<(String, &'static str)>,
}

impl PgTx {
    pub fn new(conn: sqlx::pool::PoolConnection<Postgres>, begin: PgBegin) -> PgTx {
        PgTx {
            conn: PgConn::Idle(conn),
            pending: Vec::new(),
            begin,
        }
    }

    /// An already begun transaction (snapshots begin at once, at their own isolation level).
    pub fn open(t: sqlx::Transaction<'static, Postgres>) -> PgTx {
        PgTx {
            conn: PgConn::Open(t),
            pending: Vec::new(),
            begin: PgBegin::AtFirstStatement,
        }
    }

    pub fn queue_deferred(&mut self, d: Deferred) {
        self.pending.push(d);
    }

    /// The connection for `q`: as it is for a declared read before the first write of an
    /// at-first-write transaction, else inside the transaction (begun if need be) once every
    /// deferred write has been sent.
    async fn ready(&mut self, access: Access) -> DbResult<&mut sqlx::PgConnection> {
        let read_before_begin = self.begin == PgBegin::AtFirstWrite
            && access == Access::Read
            && self.pending.is_empty()
            && matches!(self.conn, PgConn::Idle(_));
        if !read_before_begin {
            self.open_now().await?;
            self.flush().await?;
        }
        self.conn()
    }

    pub async fn fetch_all(&mut self, q: Q) -> DbResult<Vec<Row>> {
        let conn = self.ready(q.access()).await?;
        let rows = q.postgres().fetch_all(conn).await;
        self.retire_if_lost(&rows);
        Ok(rows?.into_iter().map(Row::Postgres).collect())
    }

    pub async fn fetch_optional(&mut self, q: Q) -> DbResult<Option<Row>> {
        let conn = self.ready(q.access()).await?;
        let row = q.postgres().fetch_optional(conn).await;
        self.retire_if_lost(&row);
        Ok(row?.map(Row::Postgres))
    }

    pub async fn execute(&mut self, q: Q) -> DbResult<u64> {
        let conn = self.ready(q.access()).await?;
        let done = q.postgres().execute(conn).await;
        self.retire_if_lost(&done);
        Ok(done?.rows_affected())
    }

    /// A connection not yet in a transaction whose statement failed because the connection
    /// broke is closed when dropped. (One in a transaction is: the `ROLLBACK` its drop queues
    /// goes through the pool's ping, which fails.)
    fn retire_if_lost<T>(&mut self, result: &Result<T, sqlx::Error>) {
        if let PgConn::Idle(c) = &mut self.conn {
            super::db::retire_if_lost(c, result);
        }
    }

    fn conn(&mut self) -> DbResult<&mut sqlx::PgConnection> {
        match &mut self.conn {
            PgConn::Idle(c) => Ok(&mut **c),
            PgConn::Open(t) => Ok(&mut **t),
            PgConn::Gone => Err(DbError::Other(sqlx::Error::PoolClosed)),
        }
    }

    async fn open_now(&mut self) -> DbResult<()> {
        if matches!(self.conn, PgConn::Idle(_))
            && let PgConn::Idle(c) = std::mem::replace(&mut self.conn, PgConn::Gone)
        {
            let begin = sqlx::SqlStr::from_static(BEGIN);
            self.conn = PgConn::Open(sqlx::Transaction::begin(c, Some(begin)).await?);
        }
        Ok(())
    }

    /// Sends the deferred writes (the transaction is open).
    async fn flush(&mut self) -> DbResult<()> {
        let todo = outgoing(std::mem::take(&mut self.pending));
        self.send(todo).await
    }

    async fn send(&mut self, todo: Vec<Outgoing>) -> DbResult<()> {
        for Outgoing { q, writes } in todo {
            let conn = self.conn()?;
            if let Err(e) = q.postgres().execute(conn).await {
                return Err(name_failed_write(e, &writes));
            }
        }
        Ok(())
    }

    pub async fn commit(mut self) -> DbResult<()> {
        let mut todo = outgoing(std::mem::take(&mut self.pending));
        if let PgConn::Idle(c) = &mut self.conn {
            if self.begin == PgBegin::AtFirstWrite && todo.len() <= 1 {
                // Never begun: nothing to do, or one statement that is atomic on its own.
                if let Some(Outgoing { q, writes }) = todo.pop() {
                    let done = q.postgres().execute(&mut **c).await;
                    super::db::retire_if_lost(c, &done);
                    done.map_err(|e| name_failed_write(e, &writes))?;
                }
                return Ok(());
            }
            if todo.is_empty() {
                // Nothing was ever sent and nothing is to be written.
                return Ok(());
            }
        }
        self.open_now().await?;
        self.send(todo).await?;
        match self.conn {
            PgConn::Open(t) => Ok(t.commit().await?),
            _ => Err(DbError::Other(sqlx::Error::PoolClosed)),
        }
    }

    pub async fn rollback(self) -> DbResult<()> {
        if let PgConn::Open(t) = self.conn {
            t.rollback().await?;
        }
        Ok(())
    }

    /// Runs a migration script inside the transaction, after whatever is pending.
    pub async fn run_script(&mut self, script: &'static str) -> DbResult<()> {
        self.open_now().await?;
        self.flush().await?;
        sqlx::raw_sql(script).execute(self.conn()?).await?;
        Ok(())
    }
}

/// The deferred writes as the statements to send, in order: each run of consecutive mergeable
/// writes to different tables merged into one ([`merged`]), any other alone.
fn outgoing(pending: Vec<Deferred>) -> Vec<Outgoing> {
    let mut out = Vec::new();
    let mut run: Vec<Deferred> = Vec::new();
    let mut binds = 0;
    let end_run = |run: &mut Vec<Deferred>, out: &mut Vec<Outgoing>| {
        if run.is_empty() {
            return;
        }
        let writes = run.iter().map(|d| (d.name(), d.table.as_str())).collect();
        let q = if run.len() == 1 {
            run.pop().map(|d| d.q)
        } else {
            Some(merged(
                std::mem::take(run).into_iter().map(|d| d.q).collect(),
            ))
        };
        run.clear();
        if let Some(q) = q {
            out.push(Outgoing { q, writes });
        }
    };
    for d in pending {
        let joins = d.mergeable
            && !run.iter().any(|r| r.table == d.table)
            && binds + d.q.args.len() <= MERGED_BINDS;
        if !joins {
            end_run(&mut run, &mut out);
            binds = 0;
        }
        if d.mergeable {
            binds += d.q.args.len();
            run.push(d);
        } else {
            out.push(Outgoing {
                writes: vec![(d.name(), d.table.as_str())],
                q: d.q,
            });
        }
    }
    end_run(&mut run, &mut out);
    out
}

/// The error of a statement carrying deferred `writes`, naming the one that failed: the one
/// whose table Postgres reports, or all of them if it reports none.
fn name_failed_write(e: sqlx::Error, writes: &[(String, &'static str)]) -> DbError {
    let table = match &e {
        sqlx::Error::Database(d) => d
            .try_downcast_ref::<sqlx::postgres::PgDatabaseError>()
            .and_then(|p| p.table().map(str::to_owned)),
        _ => None,
    };
    let name = match table.and_then(|t| writes.iter().find(|(_, w)| *w == t)) {
        Some((name, _)) => name.clone(),
        None => writes
            .iter()
            .map(|(n, _)| n.as_str())
            .collect::<Vec<_>>()
            .join("; "),
    };
    DbError::from(e).in_deferred(name)
}
