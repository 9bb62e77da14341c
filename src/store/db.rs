//! The application database: SQLite (one writer connection, many readers) or Postgres, and
//! how transactions begin on it.

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};

use super::deferred::PgBegin;
use super::error::{DbError, DbResult};
use super::exec::Exec;
use super::query::{Access, Dialect, Q};
use super::row::Row;
use super::sqlite_tx::SqliteTx;
use super::tx::Tx;
use super::{checkpoint, notify, writer};
use crate::config::sqlite_path;

/// A pooled Postgres connection idle this long is pinged before it is used again.
const PING_IF_IDLE_FOR: Duration = Duration::from_secs(5);

/// The application database. Cheap to clone.
#[derive(Clone)]
pub enum Db {
    Sqlite {
        read: sqlx::SqlitePool,
        write: writer::Writer,
        path: PathBuf,
        /// WAL checkpoints off the writer (see [`checkpoint`]).
        checkpoints: checkpoint::Checkpointer,
    },
    Postgres(sqlx::PgPool, notify::Notifier),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Db({})", self.dialect().name())
    }
}

/// When SQLite reports a commit durable (`PRAGMA synchronous`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SqliteDurability {
    /// `FULL`: a commit is on disk before it is acknowledged, so it survives a power cut.
    #[default]
    Full,
    /// `NORMAL`: a process crash loses nothing, a power cut may lose the last commits.
    Normal,
}

/// How to open the database.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
    pub sqlite_durability: SqliteDurability,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
            sqlite_durability: SqliteDurability::Full,
        }
    }
}

impl From<&crate::config::Config> for ConnectOptions {
    fn from(c: &crate::config::Config) -> ConnectOptions {
        ConnectOptions {
            max_connections: c.db_max_connections,
            acquire_timeout: Duration::from_secs(5),
            sqlite_durability: match c.sqlite_synchronous {
                crate::config::SqliteSynchronous::Full => SqliteDurability::Full,
                crate::config::SqliteSynchronous::Normal => SqliteDurability::Normal,
            },
        }
    }
}

impl Db {
    /// Opens (and for SQLite creates, with its directory) the database named by `url`.
    /// Connections are made lazily for Postgres so that a server can start, report
    /// `/health/ready` as 503 and recover when the database comes back.
    pub async fn connect(url: &str, opts: &ConnectOptions) -> DbResult<Db> {
        if let Some(path) = sqlite_path(url) {
            create_private_file(&path).map_err(|e| DbError::Unavailable(sqlx::Error::Io(e)))?;
            let synchronous = match opts.sqlite_durability {
                SqliteDurability::Full => SqliteSynchronous::Full,
                SqliteDurability::Normal => SqliteSynchronous::Normal,
            };
            let base = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(synchronous)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .pragma("temp_store", "memory");
            // No test before acquire nor on release: a connection to a file in this process has
            // no other end to lose, and each test is a round trip to the connection's thread.
            let write_timeout = opts.acquire_timeout.max(Duration::from_secs(10));
            let write = SqlitePoolOptions::new()
                .max_connections(1)
                .test_before_acquire(false)
                .acquire_timeout(write_timeout)
                .connect_with(
                    base.clone()
                        .pragma("wal_autocheckpoint", checkpoint::WRITER_AUTOCHECKPOINT),
                )
                .await?;
            let checkpoints = checkpoint::Checkpointer::start(base.clone());
            let read = SqlitePoolOptions::new()
                .max_connections(opts.max_connections.max(2))
                .test_before_acquire(false)
                .test_on_release(false)
                .acquire_timeout(opts.acquire_timeout)
                .connect_with(base.read_only(true))
                .await?;
            Ok(Db::Sqlite {
                read,
                write: writer::Writer::new(write, write_timeout),
                path,
                checkpoints,
            })
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let o = PgConnectOptions::from_str(url)?;
            let pool = PgPoolOptions::new()
                .max_connections(opts.max_connections)
                .acquire_timeout(opts.acquire_timeout)
                // sqlx pings every connection it hands out: a round trip of its own before each
                // query, which doubled the cost of a single read. Only a connection that sat
                // idle (a restart or a proxy may have cut it meanwhile) is pinged now.
                .test_before_acquire(false)
                // Nor on release (vendor/README.md): the next statement drains whatever a
                // cancelled one left, and a connection with a queued ROLLBACK is still pinged.
                .test_on_release(false)
                .before_acquire(|conn, meta| {
                    Box::pin(async move {
                        if meta.idle_for < PING_IF_IDLE_FOR {
                            return Ok(true);
                        }
                        Ok(sqlx::Connection::ping(conn).await.is_ok())
                    })
                })
                .connect_lazy_with(o);
            let notifier = notify::Notifier::start(pool.clone());
            Ok(Db::Postgres(pool, notifier))
        } else {
            Err(DbError::Other(sqlx::Error::Configuration(
                "unsupported database url".into(),
            )))
        }
    }

    pub fn dialect(&self) -> Dialect {
        match self {
            Db::Sqlite { .. } => Dialect::Sqlite,
            Db::Postgres(..) => Dialect::Postgres,
        }
    }

    /// A read-write transaction. On SQLite it holds the one writer from its first statement
    /// (`BEGIN IMMEDIATE`, so two writers never deadlock upgrading a read lock). On Postgres it
    /// is `BEGIN ISOLATION LEVEL READ COMMITTED` (whatever the server's default), sent with its
    /// first statement.
    pub async fn begin(&self) -> DbResult<Tx> {
        self.begin_pg(PgBegin::AtFirstStatement).await
    }

    /// [`Db::begin`], except that on Postgres the reads declared as such ([`Q::read`]) before
    /// the first write run on the transaction's connection outside it, each on its own
    /// snapshot as under `READ COMMITTED`, and a transaction whose writes are all deferred
    /// and merge into one statement sends that statement alone (one statement is atomic).
    /// For hot write paths that read first (subscribers, then the outbox): it saves the
    /// `BEGIN` and `COMMIT` round trips. Use it only where no read needs to see the same
    /// snapshot as the writes that follow. On SQLite it is [`Db::begin`].
    pub async fn begin_at_first_write(&self) -> DbResult<Tx> {
        self.begin_pg(PgBegin::AtFirstWrite).await
    }

    async fn begin_pg(&self, begin: PgBegin) -> DbResult<Tx> {
        Ok(match self {
            Db::Sqlite { write, .. } => Tx::sqlite_writer(write.acquire().await?),
            Db::Postgres(p, n) => Tx::postgres(p.acquire().await?, begin, n),
        })
    }

    /// A read-only transaction that sees one consistent snapshot (backups, exports).
    pub async fn begin_snapshot(&self) -> DbResult<Tx> {
        Ok(match self {
            Db::Sqlite { read, .. } => Tx::sqlite_snapshot(read.acquire().await?),
            Db::Postgres(p, n) => Tx::postgres_snapshot(
                p.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    .await?,
                n,
            ),
        })
    }

    /// Cheap liveness probe of the database.
    pub async fn ping(&self) -> DbResult<()> {
        Q::read("SELECT 1 AS one")
            .fetch_scalar::<i32>(&mut self.clone())
            .await?;
        Ok(())
    }

    pub fn pg_pool(&self) -> Option<&sqlx::PgPool> {
        match self {
            Db::Postgres(p, _) => Some(p),
            Db::Sqlite { .. } => None,
        }
    }

    pub fn sqlite_path(&self) -> Option<&Path> {
        match self {
            Db::Sqlite { path, .. } => Some(path),
            Db::Postgres(..) => None,
        }
    }

    /// (in use, idle) connections of the main pool, for metrics and deep health.
    pub fn pool_usage(&self) -> (u32, u32) {
        match self {
            Db::Sqlite { read, write, .. } => (
                read.size() + write.pool().size(),
                u32::try_from(read.num_idle() + write.pool().num_idle()).unwrap_or(u32::MAX),
            ),
            Db::Postgres(p, _) => (p.size(), u32::try_from(p.num_idle()).unwrap_or(u32::MAX)),
        }
    }

    pub async fn close(&self) {
        match self {
            Db::Sqlite {
                read,
                write,
                checkpoints,
                ..
            } => {
                checkpoints.stop();
                read.close().await;
                write.close().await;
            }
            Db::Postgres(p, _) => p.close().await,
        }
    }
}

/// Creates the database file (and its directory) readable by this user only, before SQLite
/// opens it: it holds personal data. SQLite gives the WAL and shared-memory files the
/// database file's permissions. An existing file or directory is left as it is.
fn create_private_file(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(dir)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
    {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// On the pool, each query is its own transaction. On SQLite a declared read goes to the
/// readers' pool and a write to the one writer connection (inside a group commit, if one is
/// open, and durable when it returns either way).
impl Exec for Db {
    fn dialect(&self) -> Dialect {
        Db::dialect(self)
    }

    async fn query_rows(&mut self, q: Q) -> DbResult<Vec<Row>> {
        Ok(match self {
            Db::Sqlite { read, write, .. } => {
                let rows = match q.access() {
                    Access::Read => q.sqlite().fetch_all(&*read).await?,
                    Access::Write => {
                        let mut w = write.acquire().await?;
                        if w.in_group() {
                            return Ok(SqliteTx::alone_in_group(w, q).await?.0);
                        }
                        q.sqlite().fetch_all(w.get()?).await?
                    }
                };
                rows.into_iter().map(Row::Sqlite).collect()
            }
            Db::Postgres(p, _) => {
                let mut conn = p.acquire().await?;
                let rows = q.postgres().fetch_all(&mut *conn).await;
                retire_if_lost(&mut conn, &rows);
                rows?.into_iter().map(Row::Postgres).collect()
            }
        })
    }

    async fn query_row(&mut self, q: Q) -> DbResult<Option<Row>> {
        Ok(match self {
            Db::Sqlite { read, write, .. } => {
                let row = match q.access() {
                    Access::Read => q.sqlite().fetch_optional(&*read).await?,
                    Access::Write => {
                        let mut w = write.acquire().await?;
                        if w.in_group() {
                            let rows = SqliteTx::alone_in_group(w, q).await?.0;
                            return Ok(rows.into_iter().next());
                        }
                        q.sqlite().fetch_optional(w.get()?).await?
                    }
                };
                row.map(Row::Sqlite)
            }
            Db::Postgres(p, _) => {
                let mut conn = p.acquire().await?;
                let row = q.postgres().fetch_optional(&mut *conn).await;
                retire_if_lost(&mut conn, &row);
                row?.map(Row::Postgres)
            }
        })
    }

    async fn execute(&mut self, q: Q) -> DbResult<u64> {
        Ok(match self {
            Db::Sqlite { read, write, .. } => match q.access() {
                Access::Read => q.sqlite().execute(&*read).await?.rows_affected(),
                Access::Write => {
                    let mut w = write.acquire().await?;
                    if w.in_group() {
                        return Ok(SqliteTx::alone_in_group(w, q).await?.1);
                    }
                    q.sqlite().execute(w.get()?).await?.rows_affected()
                }
            },
            Db::Postgres(p, _) => {
                let mut conn = p.acquire().await?;
                let done = q.postgres().execute(&mut *conn).await;
                retire_if_lost(&mut conn, &done);
                done?.rows_affected()
            }
        })
    }
}

/// Closes a pooled Postgres connection whose statement failed because the connection broke,
/// rather than handing it to the next caller.
pub(super) fn retire_if_lost<T>(
    conn: &mut sqlx::pool::PoolConnection<sqlx::Postgres>,
    result: &Result<T, sqlx::Error>,
) {
    if let Err(e) = result
        && super::error::connection_lost(e)
    {
        conn.close_on_drop();
    }
}
