//! A SQLite transaction run by hand on the writer (or a reader, for snapshots), so that
//! statements travel together: the `BEGIN` goes with the first statement, deferred writes
//! with the next one, and the last of them with the `COMMIT`.
//!
//! Why: sqlx runs each SQLite statement on the connection's own thread, so every statement is
//! a round trip between threads while the one writer connection stays held. An API write with
//! its outbox (row, event, delivery, job) was seven round trips; when both cores are not busy
//! each is a wake-up of a parked thread, and writes queued behind that latency rather than
//! behind any CPU (docs/BENCHMARKS.md, "SQLite statements travel together").

use futures_util::TryStreamExt as _;

use super::deferred::Deferred;
use super::error::{DbError, DbResult};
use super::query::Q;
use super::row::Row;
use super::sql_text::sqlite_query;
use super::writer::WriterConn;

/// The connection a SQLite transaction runs on: the writer, or one of the readers' pool.
enum Conn {
    Pooled(sqlx::pool::PoolConnection<sqlx::Sqlite>),
    Writer(WriterConn),
}

impl Conn {
    fn get(&mut self) -> DbResult<&mut sqlx::SqliteConnection> {
        match self {
            Conn::Pooled(c) => Ok(&mut **c),
            Conn::Writer(w) => w.get(),
        }
    }

    /// Closes the connection rather than hand it on: its state is unknown.
    fn discard(self) {
        match self {
            Conn::Pooled(mut c) => c.close_on_drop(),
            Conn::Writer(w) => w.discard(),
        }
    }
}

/// What a statement waiting to be sent is, so its rows and its errors go to the right place.
enum Part {
    Begin,
    Deferred(String),
    /// A prefetch, whose rows go to this slot.
    Prefetch(usize),
    /// The statement the caller runs now: its rows are the answer.
    Now,
}

pub(crate) struct SqliteTx {
    /// `None` once committed or rolled back.
    conn: Option<Conn>,
    /// Statements not sent yet, in order; the first is the `BEGIN` until it has been sent.
    pending: Vec<(Q, Part)>,
    /// Whether anything was sent, so the connection may hold an open transaction.
    begun: bool,
}

impl SqliteTx {
    /// On the writer: `BEGIN IMMEDIATE` takes the write lock at once, so two writers never
    /// deadlock upgrading a read lock.
    pub fn writer(conn: WriterConn) -> SqliteTx {
        SqliteTx::new(Conn::Writer(conn), "BEGIN IMMEDIATE")
    }

    /// On a reader: one snapshot for every read of the transaction.
    pub fn snapshot(conn: sqlx::pool::PoolConnection<sqlx::Sqlite>) -> SqliteTx {
        SqliteTx::new(Conn::Pooled(conn), "BEGIN DEFERRED")
    }

    fn new(conn: Conn, begin: &'static str) -> SqliteTx {
        SqliteTx {
            conn: Some(conn),
            pending: vec![(Q::write(begin), Part::Begin)],
            begun: false,
        }
    }

    fn conn(&mut self) -> DbResult<&mut sqlx::SqliteConnection> {
        self.conn
            .as_mut()
            .ok_or(DbError::Other(sqlx::Error::PoolClosed))?
            .get()
    }

    pub fn queue_deferred(&mut self, d: Deferred) {
        let name = d.name();
        self.pending.push((d.q, Part::Deferred(name)));
    }

    pub fn queue_prefetch(&mut self, q: Q, slot: usize) {
        self.pending.push((q, Part::Prefetch(slot)));
    }

    /// Runs the pending statements and then `q` in one round trip. Returns `q`'s rows and how
    /// many rows it changed; the rows of prefetches go to their slots in `prefetched`.
    pub async fn run(
        &mut self,
        q: Q,
        prefetched: &mut [Option<Vec<Row>>],
    ) -> DbResult<(Vec<Row>, u64)> {
        let mut all = std::mem::take(&mut self.pending);
        all.push((q, Part::Now));
        self.send(all, prefetched).await
    }

    /// Sends whatever is pending on its own.
    pub async fn flush(&mut self, prefetched: &mut [Option<Vec<Row>>]) -> DbResult<()> {
        let all = std::mem::take(&mut self.pending);
        if !all.is_empty() {
            self.send(all, prefetched).await?;
        }
        Ok(())
    }

    /// Sends `statements` in one round trip. Returns the rows of the one sent [`Part::Now`]
    /// (if any) and how many rows the last statement changed. If a deferred write fails, the
    /// error names it.
    async fn send(
        &mut self,
        statements: Vec<(Q, Part)>,
        prefetched: &mut [Option<Vec<Row>>],
    ) -> DbResult<(Vec<Row>, u64)> {
        let (statements, parts): (Vec<Q>, Vec<Part>) = statements.into_iter().unzip();
        self.begun = true;
        let last = statements.len() - 1;
        let query = sqlite_query(&statements);
        let conn = self.conn()?;
        let mut statement = 0;
        let mut rows = Vec::new();
        let mut changed = 0;
        let mut kept: Vec<(usize, Vec<Row>)> = Vec::new();
        let mut stream = multi_statement(query, conn);
        let outcome: Result<(), sqlx::Error> = async {
            while let Some(item) = stream.try_next().await? {
                match item {
                    sqlx::Either::Left(done) => {
                        if statement == last {
                            changed = done.rows_affected();
                        }
                        statement += 1;
                    }
                    sqlx::Either::Right(row) => match parts.get(statement) {
                        Some(Part::Prefetch(slot)) => match kept.last_mut() {
                            Some((s, rows)) if s == slot => rows.push(Row::Sqlite(row)),
                            _ => kept.push((*slot, vec![Row::Sqlite(row)])),
                        },
                        Some(Part::Now) => rows.push(Row::Sqlite(row)),
                        _ => {}
                    },
                }
            }
            Ok(())
        }
        .await;
        drop(stream);
        if let Err(e) = outcome {
            let e = DbError::from(e);
            return Err(match parts.into_iter().nth(statement) {
                Some(Part::Deferred(name)) => e.in_deferred(name),
                _ => e,
            });
        }
        // Every prefetch sent answers, with no rows if it found none.
        for part in &parts {
            if let Part::Prefetch(slot) = part
                && let Some(s) = prefetched.get_mut(*slot)
            {
                let found = kept
                    .iter_mut()
                    .find(|(k, _)| k == slot)
                    .map(|(_, r)| std::mem::take(r));
                *s = Some(found.unwrap_or_default());
            }
        }
        Ok((rows, changed))
    }

    pub async fn commit(&mut self, prefetched: &mut [Option<Vec<Row>>]) -> DbResult<()> {
        let nothing_to_write = self
            .pending
            .iter()
            .all(|(_, p)| !matches!(p, Part::Deferred(_)));
        if !self.begun && nothing_to_write {
            // Nothing was sent and nothing is to be written: there is nothing to commit.
            self.pending.clear();
            self.conn = None;
            return Ok(());
        }
        self.run(Q::write("COMMIT"), prefetched).await?;
        self.conn = None;
        Ok(())
    }

    pub async fn rollback(&mut self) -> DbResult<()> {
        self.pending.clear();
        if self.begun {
            let conn = self.conn()?;
            sqlx::query("ROLLBACK").execute(conn).await?;
        }
        self.conn = None;
        Ok(())
    }

    /// Runs a migration script after whatever is pending.
    pub async fn run_script(
        &mut self,
        script: &'static str,
        prefetched: &mut [Option<Vec<Row>>],
    ) -> DbResult<()> {
        self.flush(prefetched).await?;
        sqlx::raw_sql(script).execute(self.conn()?).await?;
        Ok(())
    }
}

/// The one use of sqlx's multi-statement execution (`fetch_many` on a text holding several
/// statements), which sqlx 0.9 marks deprecated (launchbadge/sqlx#3108) but still supports.
/// It is what lets statements travel to SQLite's thread together. Upgrade path: if a later
/// sqlx drops it, run the statements one by one here (a round trip each): every caller keeps
/// its meaning, only the writer's round trips go back up.
fn multi_statement<'c>(
    query: sqlx::query::Query<'static, sqlx::Sqlite, sqlx::sqlite::SqliteArguments>,
    conn: &'c mut sqlx::SqliteConnection,
) -> futures_util::stream::BoxStream<
    'c,
    Result<sqlx::Either<sqlx::sqlite::SqliteQueryResult, sqlx::sqlite::SqliteRow>, sqlx::Error>,
> {
    #[expect(
        deprecated,
        reason = "multi-statement queries: see this function's comment"
    )]
    query.fetch_many(conn)
}

impl Drop for SqliteTx {
    /// Dropped open (an error, or a cancelled request): roll back before the connection goes
    /// back to the pool. If there is no runtime to do it on, close the connection instead,
    /// which rolls back too.
    fn drop(&mut self) {
        let Some(mut conn) = self.conn.take() else {
            return;
        };
        if !self.begun {
            return;
        }
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    // If that fails (say the `BEGIN` itself had failed), the connection's state
                    // is unknown: close it rather than hand it on.
                    let rolled_back = match conn.get() {
                        Ok(c) => sqlx::query("ROLLBACK").execute(c).await.is_ok(),
                        Err(_) => false,
                    };
                    if !rolled_back {
                        conn.discard();
                    }
                });
            }
            Err(_) => conn.discard(),
        }
    }
}
