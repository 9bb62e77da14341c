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
    /// The end of a savepoint in a group.
    Release,
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
    /// Runs under a savepoint inside a group's open transaction ([`super::writer`]).
    in_group: bool,
}

impl SqliteTx {
    /// On the writer: `BEGIN IMMEDIATE` takes the write lock at once, so two writers never
    /// deadlock upgrading a read lock.
    /// Inside a group's open transaction it is a savepoint instead.
    pub fn writer(conn: WriterConn) -> SqliteTx {
        if conn.in_group() {
            let mut t = SqliteTx::new(Conn::Writer(conn), "SAVEPOINT member");
            t.in_group = true;
            t
        } else {
            SqliteTx::new(Conn::Writer(conn), "BEGIN IMMEDIATE")
        }
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
            in_group: false,
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

    /// Commits: alone, or as part of a group ([`super::writer`]). Either way it returns once
    /// the writes are durable.
    pub async fn commit(&mut self, prefetched: &mut [Option<Vec<Row>>]) -> DbResult<()> {
        if self.in_group {
            return self.commit_in_group(prefetched).await;
        }
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
        if let Some(Conn::Writer(w)) = &self.conn
            && !w.should_commit()
        {
            // Others are waiting for the writer: leave the transaction open for them to join,
            // and wait for the one who commits it.
            self.flush(prefetched).await?;
            return self.take_writer()?.join_group().committed().await;
        }
        self.run(Q::write("COMMIT"), prefetched).await?;
        self.conn = None;
        Ok(())
    }

    /// Releases the savepoint, then commits the group if nobody is waiting to join it, or
    /// waits for the one who does.
    async fn commit_in_group(&mut self, prefetched: &mut [Option<Vec<Row>>]) -> DbResult<()> {
        self.pending
            .push((Q::write("RELEASE member"), Part::Release));
        if let Err(e) = self.flush(prefetched).await {
            self.rollback().await?;
            return Err(e);
        }
        let mut w = self.take_writer()?;
        if w.should_commit() {
            w.commit_group().await
        } else {
            w.join_group().committed().await
        }
    }

    /// A statement on its own, on a writer held while a group is open: a savepoint of its own
    /// in the group, so that it is durable (committed with the group) when this returns.
    pub async fn alone_in_group(w: WriterConn, q: Q) -> DbResult<(Vec<Row>, u64)> {
        let mut t = SqliteTx::writer(w);
        let out = match t.run(q, &mut []).await {
            Ok(out) => out,
            Err(e) => {
                t.rollback().await?;
                return Err(e);
            }
        };
        t.commit(&mut []).await?;
        Ok(out)
    }

    fn take_writer(&mut self) -> DbResult<WriterConn> {
        match self.conn.take() {
            Some(Conn::Writer(w)) => Ok(w),
            other => {
                self.conn = other;
                Err(DbError::Other(sqlx::Error::PoolClosed))
            }
        }
    }

    pub async fn rollback(&mut self) -> DbResult<()> {
        self.pending.clear();
        match self.conn.take() {
            Some(conn) => undo(conn, self.begun, self.in_group).await,
            None => Ok(()),
        }
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

/// Undoes an open transaction: `ROLLBACK`, or inside a group its savepoint only, after which
/// the group is committed if nobody is waiting to join it. A connection left in an unknown
/// state (the rollback failed, say because the `BEGIN` itself had failed) is closed rather
/// than handed on, and a group on it is lost and its members told.
async fn undo(conn: Conn, begun: bool, in_group: bool) -> DbResult<()> {
    match conn {
        Conn::Writer(mut w) if in_group => {
            if begun {
                let undone = match w.get() {
                    Ok(c) => sqlx::raw_sql("ROLLBACK TO member; RELEASE member")
                        .execute(c)
                        .await
                        .map(drop)
                        .map_err(DbError::from),
                    Err(e) => Err(e),
                };
                if let Err(e) = undone {
                    w.discard();
                    return Err(e);
                }
            }
            if w.should_commit() {
                w.commit_group().await?;
            }
            Ok(())
        }
        mut conn if begun => {
            let rolled_back = match conn.get() {
                Ok(c) => sqlx::query("ROLLBACK").execute(c).await.map(drop),
                Err(_) => Err(sqlx::Error::PoolClosed),
            };
            if rolled_back.is_err() {
                conn.discard();
            }
            rolled_back.map_err(DbError::from)
        }
        _ => Ok(()),
    }
}

impl Drop for SqliteTx {
    /// Dropped open (an error, or a cancelled request): undo it before the connection goes on
    /// to the next transaction. If there is no runtime to do it on, close the connection
    /// instead, which rolls back too.
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else {
            return;
        };
        if !self.begun && !self.in_group {
            return;
        }
        let (begun, in_group) = (self.begun, self.in_group);
        match tokio::runtime::Handle::try_current() {
            Ok(rt) => {
                rt.spawn(async move {
                    // Whatever fails has been dealt with in `undo` (the connection closed).
                    let _ = undo(conn, begun, in_group).await;
                });
            }
            Err(_) => conn.discard(),
        }
    }
}
