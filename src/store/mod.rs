//! One store type over two native drivers (SQLite and Postgres) sharing SQL text.
//!
//! Queries are written once with `$N` placeholders and portable types (TEXT ids, BIGINT
//! epoch-millisecond times, TEXT JSON, BOOLEAN) and run on either pool. Where the dialects
//! differ (claiming jobs, upserts, backups), [`Q::dialect`] carries one text per dialect.
//! See `docs/ARCHITECTURE.md` for why this beats sqlx's `Any` driver and a trait per store.

pub mod batch;
pub mod checkpoint;
pub mod migrate;
pub mod notify;
pub mod writer;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteRow, SqliteSynchronous,
};
use sqlx::{AssertSqlSafe, Decode, Postgres, Row as _, Sqlite, Type};

/// Which SQL dialect a connection speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Dialect {
    Sqlite,
    Postgres,
}

impl Dialect {
    pub fn name(self) -> &'static str {
        match self {
            Dialect::Sqlite => "sqlite",
            Dialect::Postgres => "postgres",
        }
    }
}

/// A database error, classified once so that callers never match on driver details.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("row not found")]
    NotFound,
    #[error("unique constraint violated")]
    Unique(#[source] sqlx::Error),
    #[error("foreign key constraint violated")]
    ForeignKey(#[source] sqlx::Error),
    /// The database could not be reached or the pool is exhausted: worth retrying later.
    #[error("database unavailable")]
    Unavailable(#[source] sqlx::Error),
    #[error("database error")]
    Other(#[source] sqlx::Error),
    #[error("cannot decode column {column}")]
    Decode {
        column: String,
        #[source]
        source: sqlx::Error,
    },
}

impl DbError {
    pub fn is_unique_violation(&self) -> bool {
        matches!(self, DbError::Unique(_))
    }

    /// The database could not be reached: worth retrying later, nobody's fault.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, DbError::Unavailable(_))
    }
}

impl From<sqlx::Error> for DbError {
    fn from(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::RowNotFound => DbError::NotFound,
            sqlx::Error::Database(d) if d.is_unique_violation() => DbError::Unique(e),
            sqlx::Error::Database(d) if d.is_foreign_key_violation() => DbError::ForeignKey(e),
            sqlx::Error::Database(d) if is_busy(d.code().as_deref()) => DbError::Unavailable(e),
            // A connection closed mid-handshake (a proxy or pooler in front of a database
            // that is down or restarting) surfaces as a protocol error: transient too.
            sqlx::Error::Io(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => DbError::Unavailable(e),
            _ => DbError::Other(e),
        }
    }
}

/// SQLite BUSY/LOCKED and Postgres connection/admin-shutdown classes: transient.
fn is_busy(code: Option<&str>) -> bool {
    matches!(code, Some("5" | "6" | "517" | "57P01" | "57P02" | "57P03"))
        || code.is_some_and(|c| c.starts_with("08"))
}

pub type DbResult<T> = Result<T, DbError>;

/// A bind value. Every variant carries an `Option` so that a NULL keeps its SQL type
/// (Postgres refuses an untyped NULL where a BIGINT is expected).
#[derive(Debug, Clone)]
pub enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(Option<bool>),
    Float(Option<f64>),
    Bytes(Option<Vec<u8>>),
}

macro_rules! arg_from {
    ($t:ty, $variant:ident, $conv:expr) => {
        impl From<$t> for Arg {
            fn from(v: $t) -> Self {
                Arg::$variant(Some($conv(v)))
            }
        }
        impl From<Option<$t>> for Arg {
            fn from(v: Option<$t>) -> Self {
                Arg::$variant(v.map($conv))
            }
        }
    };
}
arg_from!(i64, Int, |v| v);
arg_from!(i32, Int, i64::from);
arg_from!(u32, Int, i64::from);
arg_from!(bool, Bool, |v| v);
arg_from!(f64, Float, |v| v);
arg_from!(String, Text, |v| v);
arg_from!(&str, Text, |v: &str| v.to_owned());
arg_from!(&String, Text, |v: &String| v.clone());
arg_from!(Vec<u8>, Bytes, |v| v);

impl From<&serde_json::Value> for Arg {
    fn from(v: &serde_json::Value) -> Self {
        Arg::Text(Some(v.to_string()))
    }
}

/// SQL text: static in nearly every case; owned only for the few filters built at runtime
/// from fixed fragments (never from input).
#[derive(Debug, Clone)]
enum Sql {
    Static(&'static str),
    Owned(String),
    PerDialect(&'static str, &'static str),
}

/// A query: SQL text plus its binds, run with one of the `fetch_*`/`execute` methods.
#[derive(Debug, Clone)]
#[must_use = "a query does nothing until it is executed"]
pub struct Q {
    sql: Sql,
    args: Vec<Arg>,
}

/// A query whose text is the same on both stores.
pub fn sql(text: &'static str) -> Q {
    Q {
        sql: Sql::Static(text),
        args: Vec::new(),
    }
}

/// `$first, …, $(first + n - 1)`: the placeholders of an `IN (…)` list of `n` binds.
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Rewrites `$n` placeholders as SQLite's anonymous `?`, returning the new text and, for each
/// `?` in order, the index of its argument (a `$n` used twice is bound twice).
///
/// Why: SQLite finds a named parameter by walking the list of all of them, so binding a
/// statement with n of them costs O(n²). A 500-row multi-row insert spent most of its time
/// there (57 % of a scheduler batch in `sqlite3_bind_parameter_name`); anonymous ones have no
/// name to look up.
fn anonymous_placeholders(text: &str) -> (String, Vec<usize>) {
    let mut order = Vec::new();
    let out = rewrite_placeholders(text, |n, out| {
        out.push('?');
        order.push(n - 1);
    });
    (out, order)
}

/// `text` with every `$n` placeholder replaced by what `emit` writes for `n`. Single-quoted
/// literals and `--` comments are left alone.
fn rewrite_placeholders(text: &str, mut emit: impl FnMut(usize, &mut String)) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut in_literal = false;
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'\'' => in_literal = !in_literal,
            // A `-- comment` runs to the end of its line; a `$n` in it is no parameter.
            b'-' if !in_literal && bytes.get(i + 1) == Some(&b'-') => {
                i += bytes[i..]
                    .iter()
                    .position(|&b| b == b'\n')
                    .unwrap_or(bytes.len() - i);
                continue;
            }
            b'$' if !in_literal => {
                let digits = bytes[i + 1..]
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .count();
                let n: usize = text[i + 1..i + 1 + digits].parse().unwrap_or(0);
                if n > 0 {
                    out.push_str(&text[copied..i]);
                    emit(n, &mut out);
                    i += 1 + digits;
                    copied = i;
                    continue;
                }
            }
            _ => {}
        }
        i += 1;
    }
    out.push_str(&text[copied..]);
    out
}

/// A query assembled at runtime from fixed fragments. Never put input into `text`: bind it.
pub fn sql_built(text: String) -> Q {
    Q {
        sql: Sql::Owned(text),
        args: Vec::new(),
    }
}

impl Q {
    /// A query with one text per dialect, for the few places where their semantics differ.
    pub fn dialect(sqlite: &'static str, postgres: &'static str) -> Q {
        Q {
            sql: Sql::PerDialect(sqlite, postgres),
            args: Vec::new(),
        }
    }

    pub fn bind(mut self, v: impl Into<Arg>) -> Self {
        self.args.push(v.into());
        self
    }

    fn text(&self, d: Dialect) -> &str {
        match (&self.sql, d) {
            (Sql::Static(s), _) => s,
            (Sql::Owned(s), _) => s,
            (Sql::PerDialect(s, _), Dialect::Sqlite) => s,
            (Sql::PerDialect(_, p), Dialect::Postgres) => p,
        }
    }

    /// Writes go to the SQLite writer connection; everything else to the readers.
    fn is_write(&self) -> bool {
        let t = self.text(Dialect::Sqlite).trim_start();
        let head: String = t.chars().take(7).collect::<String>().to_ascii_uppercase();
        [
            "INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "WITH",
        ]
        .iter()
        .any(|k| head.starts_with(k))
    }

    /// A `SELECT` that takes no lock a transaction would hold and calls nothing that could
    /// (`FOR UPDATE`/`SHARE`, advisory locks, sequences, settings): run before a Postgres
    /// transaction's `BEGIN`, it sees and does what it would inside ([`PgTx`]). A deny-list
    /// that covers every `SELECT` written so far: one calling another function with effects
    /// must be added here.
    fn is_plain_read(&self) -> bool {
        let upper = self
            .text(Dialect::Postgres)
            .trim_start()
            .to_ascii_uppercase();
        upper.starts_with("SELECT")
            && !upper.contains(';')
            && !upper
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .any(|w| {
                    matches!(w, "FOR" | "LOCK" | "NEXTVAL" | "SETVAL" | "SET_CONFIG")
                        || w.starts_with("PG_")
                })
    }

    /// The one table this statement writes, if it is a plain `INSERT`, `UPDATE` or `DELETE`
    /// that reads no other table and returns nothing: the writes [`combined`] may merge.
    fn sole_table_written(&self) -> Option<String> {
        let upper = self
            .text(Dialect::Postgres)
            .trim_start()
            .to_ascii_uppercase();
        let rest = ["INSERT INTO ", "UPDATE ", "DELETE FROM "]
            .iter()
            .find_map(|p| upper.strip_prefix(p))?;
        // A sub-select, `UPDATE … FROM` or `DELETE … USING` reads; `RETURNING` answers.
        let reads = rest
            .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .any(|w| matches!(w, "SELECT" | "FROM" | "USING" | "RETURNING"));
        if reads || rest.contains(';') {
            return None;
        }
        let table: String = rest
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        (!table.is_empty()).then_some(table)
    }

    fn sqlite(&self) -> sqlx::query::Query<'_, Sqlite, sqlx::sqlite::SqliteArguments> {
        sqlite_statements(std::slice::from_ref(self))
    }

    fn postgres(&self) -> sqlx::query::Query<'_, Postgres, sqlx::postgres::PgArguments> {
        let mut q = sqlx::query(AssertSqlSafe(self.text(Dialect::Postgres).to_owned()));
        for a in &self.args {
            q = match a {
                Arg::Int(v) => q.bind(*v),
                Arg::Text(v) => q.bind(v.clone()),
                Arg::Bool(v) => q.bind(*v),
                Arg::Float(v) => q.bind(*v),
                Arg::Bytes(v) => q.bind(v.clone()),
            };
        }
        q
    }

    pub async fn fetch_all(self, ex: &mut impl Exec) -> DbResult<Vec<Row>> {
        ex.fetch_all(self).await
    }

    pub async fn fetch_optional(self, ex: &mut impl Exec) -> DbResult<Option<Row>> {
        ex.fetch_optional(self).await
    }

    pub async fn fetch_one(self, ex: &mut impl Exec) -> DbResult<Row> {
        ex.fetch_optional(self).await?.ok_or(DbError::NotFound)
    }

    pub async fn execute(self, ex: &mut impl Exec) -> DbResult<u64> {
        ex.execute(self).await
    }
}

/// SQL NULL, for a placeholder that has no argument.
const NULL: Arg = Arg::Int(None);

/// One SQLite query running `qs` in order, each with its own arguments (SQLite binds a
/// multi-statement text's anonymous `?`s in sequence).
fn sqlite_statements<'q>(
    qs: &[Q],
) -> sqlx::query::Query<'q, Sqlite, sqlx::sqlite::SqliteArguments> {
    let mut text = String::new();
    let mut args: Vec<&Arg> = Vec::new();
    for q in qs {
        if !text.is_empty() {
            text.push_str(";\n");
        }
        let (anonymous, order) = anonymous_placeholders(q.text(Dialect::Sqlite));
        text.push_str(&anonymous);
        // A placeholder without an argument reads NULL, as SQLite itself would have it.
        args.extend(order.iter().map(|&i| q.args.get(i).unwrap_or(&NULL)));
    }
    let mut query = sqlx::query(AssertSqlSafe(text));
    for a in args {
        query = match a {
            Arg::Int(v) => query.bind(*v),
            Arg::Text(v) => query.bind(v.clone()),
            Arg::Bool(v) => query.bind(*v),
            Arg::Float(v) => query.bind(*v),
            Arg::Bytes(v) => query.bind(v.clone()),
        };
    }
    query
}

/// Inserts many rows with multi-row `INSERT … VALUES (…), (…)` statements: one round trip per
/// chunk instead of one per row. `head` is `INSERT INTO t (a, b, c)`; every row has the same
/// number of values; `tail` (e.g. `ON CONFLICT DO NOTHING`) follows each chunk.
pub async fn insert_many(
    ex: &mut impl Exec,
    head: &str,
    tail: &str,
    rows: Vec<Vec<Arg>>,
) -> DbResult<u64> {
    let mut total = 0;
    for q in insert_statements(head, tail, rows) {
        total += q.execute(ex).await?;
    }
    Ok(total)
}

/// [`insert_many`] as deferred writes ([`Tx::defer`]): for rows nothing in the transaction
/// reads back before it commits.
pub async fn insert_many_deferred(
    tx: &mut Tx,
    head: &str,
    tail: &str,
    rows: Vec<Vec<Arg>>,
) -> DbResult<()> {
    for q in insert_statements(head, tail, rows) {
        tx.defer(q).await?;
    }
    Ok(())
}

fn insert_statements(head: &str, tail: &str, rows: Vec<Vec<Arg>>) -> Vec<Q> {
    let Some(width) = rows.first().map(Vec::len) else {
        return Vec::new();
    };
    // Well under SQLite's 32766 and Postgres's 65535 bind limits.
    let per_chunk = (30_000 / width.max(1)).clamp(1, 1000);
    let mut out = Vec::new();
    let mut rows = rows.into_iter().peekable();
    while rows.peek().is_some() {
        let chunk: Vec<Vec<Arg>> = rows.by_ref().take(per_chunk).collect();
        let mut text = String::with_capacity(head.len() + chunk.len() * width * 5);
        text.push_str(head);
        text.push_str(" VALUES ");
        let mut n = 0;
        for (i, _) in chunk.iter().enumerate() {
            if i > 0 {
                text.push(',');
            }
            text.push('(');
            for j in 0..width {
                if j > 0 {
                    text.push(',');
                }
                n += 1;
                text.push('$');
                text.push_str(&n.to_string());
            }
            text.push(')');
        }
        text.push(' ');
        text.push_str(tail);
        let mut q = sql_built(text);
        q.args.reserve(chunk.len() * width);
        for row in chunk {
            debug_assert_eq!(row.len(), width);
            q.args.extend(row);
        }
        out.push(q);
    }
    out
}

/// A value that decodes from a column of either store.
pub trait Col:
    for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}
impl<T> Col for T where
    T: for<'r> Decode<'r, Sqlite> + Type<Sqlite> + for<'r> Decode<'r, Postgres> + Type<Postgres>
{
}

/// A result row from either store.
pub enum Row {
    Sqlite(SqliteRow),
    Postgres(PgRow),
}

impl Row {
    pub fn get<T: Col>(&self, column: &str) -> DbResult<T> {
        let r = match self {
            Row::Sqlite(r) => r.try_get::<T, _>(column),
            Row::Postgres(r) => r.try_get::<T, _>(column),
        };
        r.map_err(|source| DbError::Decode {
            column: column.to_owned(),
            source,
        })
    }

    /// A TEXT column holding JSON.
    pub fn json(&self, column: &str) -> DbResult<serde_json::Value> {
        let s: String = self.get(column)?;
        Ok(serde_json::from_str(&s).unwrap_or(serde_json::Value::Null))
    }

    pub fn columns(&self) -> Vec<String> {
        match self {
            Row::Sqlite(r) => r.columns().iter().map(|c| c.name().to_owned()).collect(),
            Row::Postgres(r) => r.columns().iter().map(|c| c.name().to_owned()).collect(),
        }
    }
}

use sqlx::Column as _;

/// Something queries run on: the pool ([`Db`]) or an open transaction ([`Tx`]).
pub trait Exec: Send {
    fn dialect(&self) -> Dialect;
    fn fetch_all(&mut self, q: Q) -> impl Future<Output = DbResult<Vec<Row>>> + Send;
    fn fetch_optional(&mut self, q: Q) -> impl Future<Output = DbResult<Option<Row>>> + Send;
    fn execute(&mut self, q: Q) -> impl Future<Output = DbResult<u64>> + Send;
}

/// The application database: SQLite (one writer connection, many readers) or Postgres.
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

/// How to open the database.
#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    pub acquire_timeout: Duration,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            max_connections: 10,
            acquire_timeout: Duration::from_secs(5),
        }
    }
}

impl Db {
    /// Opens (and for SQLite creates, with its directory) the database named by `url`.
    /// Connections are made lazily for Postgres so that a server can start, report
    /// `/health/ready` as 503 and recover when the database comes back.
    pub async fn connect(url: &str, opts: &ConnectOptions) -> DbResult<Db> {
        if let Some(path) = sqlite_path(url) {
            if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                std::fs::create_dir_all(dir)
                    .map_err(|e| DbError::Unavailable(sqlx::Error::Io(e)))?;
            }
            let base = SqliteConnectOptions::new()
                .filename(&path)
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(10))
                .foreign_keys(true)
                .pragma("temp_store", "memory");
            // No test before acquire: a connection to a file in this process has no other end
            // to lose, and the test is a round trip to the connection's thread per query.
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

    /// A write transaction. On SQLite it takes the write lock up front (`BEGIN IMMEDIATE`)
    /// so that two writers never deadlock upgrading a read lock.
    pub async fn begin(&self) -> DbResult<Tx> {
        Ok(match self {
            Db::Sqlite { write, .. } => {
                Tx::sqlite(Conn::Writer(write.acquire().await?), "BEGIN IMMEDIATE")
            }
            Db::Postgres(p, n) => Tx::postgres(PgConn::Idle(p.acquire().await?), n),
        })
    }

    /// A read-only transaction that sees one consistent snapshot (backups, exports).
    pub async fn begin_snapshot(&self) -> DbResult<Tx> {
        Ok(match self {
            Db::Sqlite { read, .. } => {
                Tx::sqlite(Conn::Pooled(read.acquire().await?), "BEGIN DEFERRED")
            }
            Db::Postgres(p, n) => Tx::postgres(
                PgConn::Open(
                    p.begin_with("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                        .await?,
                ),
                n,
            ),
        })
    }

    /// Runs a multi-statement script (migrations) inside `tx`.
    pub async fn raw_script(tx: &mut Tx, script: &'static str) -> DbResult<()> {
        match &mut tx.inner {
            TxInner::Sqlite(t) => {
                t.flush(&mut tx.prefetched).await?;
                sqlx::raw_sql(script).execute(t.conn()?).await?;
            }
            TxInner::Postgres(t) => {
                t.open().await?;
                t.flush().await?;
                sqlx::raw_sql(script).execute(t.conn()?).await?;
            }
        }
        Ok(())
    }

    /// Cheap liveness probe of the database.
    pub async fn ping(&self) -> DbResult<()> {
        sql("SELECT 1 AS one").fetch_one(&mut self.clone()).await?;
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

    /// (in use, idle, max) connections of the main pool, for metrics and deep health.
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

/// The filesystem path of a `sqlite://` URL (`sqlite://rampart-data/rampart.db` is relative,
/// `sqlite:///var/lib/rampart.db` absolute), or `None` for any other scheme.
pub fn sqlite_path(url: &str) -> Option<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let rest = rest.split('?').next().unwrap_or(rest);
    if rest.is_empty() {
        return None;
    }
    Some(PathBuf::from(rest))
}

impl Exec for Db {
    fn dialect(&self) -> Dialect {
        Db::dialect(self)
    }

    async fn fetch_all(&mut self, q: Q) -> DbResult<Vec<Row>> {
        Ok(match self {
            Db::Sqlite { read, write, .. } => {
                let rows = if q.is_write() {
                    q.sqlite().fetch_all(write.acquire().await?.get()?).await?
                } else {
                    q.sqlite().fetch_all(&*read).await?
                };
                rows.into_iter().map(Row::Sqlite).collect()
            }
            Db::Postgres(p, _) => q
                .postgres()
                .fetch_all(&*p)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }

    async fn fetch_optional(&mut self, q: Q) -> DbResult<Option<Row>> {
        Ok(match self {
            Db::Sqlite { read, write, .. } => {
                let row = if q.is_write() {
                    q.sqlite()
                        .fetch_optional(write.acquire().await?.get()?)
                        .await?
                } else {
                    q.sqlite().fetch_optional(&*read).await?
                };
                row.map(Row::Sqlite)
            }
            Db::Postgres(p, _) => q.postgres().fetch_optional(&*p).await?.map(Row::Postgres),
        })
    }

    async fn execute(&mut self, q: Q) -> DbResult<u64> {
        Ok(match self {
            Db::Sqlite { write, .. } => q
                .sqlite()
                .execute(write.acquire().await?.get()?)
                .await?
                .rows_affected(),
            Db::Postgres(p, _) => q.postgres().execute(&*p).await?.rows_affected(),
        })
    }
}

/// An open transaction on either store. Dropped without `commit` it rolls back.
pub struct Tx {
    inner: TxInner,
    after_commit: Vec<Box<dyn FnOnce() + Send>>,
    notifier: Option<notify::Notifier>,
    /// Rows of [`Tx::prefetch`]ed reads, by [`Prefetched`] slot (`None`: not read yet).
    prefetched: Vec<Option<Vec<Row>>>,
}

/// A read asked for ahead of need: see [`Tx::prefetch`].
#[must_use]
#[derive(Debug)]
pub struct Prefetched(usize);

enum TxInner {
    Sqlite(SqliteTx),
    Postgres(PgTx),
}

/// The connection a SQLite transaction runs on: the writer, or one of the readers' pool.
enum Conn {
    Pooled(sqlx::pool::PoolConnection<Sqlite>),
    Writer(writer::WriterConn),
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

/// A SQLite transaction run by hand on the writer (or a reader), so that statements can travel
/// together: the `BEGIN` goes with the first statement, deferred writes ([`Tx::defer`]) with
/// the next one, and the last of them with the `COMMIT`.
///
/// Why: sqlx runs each SQLite statement on the connection's own thread, so every statement is
/// a round trip between threads, and the one writer connection stays held meanwhile. An API
/// write with its outbox (row, event, delivery, job) was seven round trips; when both cores are
/// not busy each is a wake-up of a parked thread, and writes queued behind that latency rather
/// than behind any CPU. Multi-statement texts with anonymous `?` bind their arguments in
/// sequence (see [`sqlite_statements`]).
struct SqliteTx {
    /// `None` once committed or rolled back.
    conn: Option<Conn>,
    /// Statements not sent yet, in order; the first is the `BEGIN` until it has been sent.
    pending: Vec<Q>,
    /// Pending reads whose rows are kept for later ([`Tx::prefetch`]): (index in `pending`,
    /// slot in `prefetched`).
    keep: Vec<(usize, usize)>,
    /// Whether anything was sent, so the connection may hold an open transaction.
    begun: bool,
}

impl SqliteTx {
    fn new(conn: Conn, begin: &'static str) -> SqliteTx {
        SqliteTx {
            conn: Some(conn),
            pending: vec![sql(begin)],
            keep: Vec::new(),
            begun: false,
        }
    }

    fn conn(&mut self) -> DbResult<&mut sqlx::SqliteConnection> {
        self.conn
            .as_mut()
            .ok_or(DbError::Other(sqlx::Error::PoolClosed))?
            .get()
    }

    /// Runs the pending statements and then `q` in one round trip. Returns `q`'s rows and how
    /// many rows it changed; the rows of prefetches go to their slots in `prefetched`.
    async fn run(
        &mut self,
        q: Q,
        prefetched: &mut [Option<Vec<Row>>],
    ) -> DbResult<(Vec<Row>, u64)> {
        use futures_util::TryStreamExt as _;
        let mut all = std::mem::take(&mut self.pending);
        let keep = std::mem::take(&mut self.keep);
        all.push(q);
        self.begun = true;
        let query = sqlite_statements(&all);
        // Per statement: its rows, then its result; the last statement is `q`.
        #[allow(deprecated)] // multi-statement queries: see `sqlite_statements`
        let mut stream = query.fetch_many(self.conn()?);
        let (mut statement, last) = (0, all.len() - 1);
        let mut kept: Vec<(usize, Vec<Row>)> = keep.iter().map(|k| (k.1, Vec::new())).collect();
        let (mut rows, mut changed) = (Vec::new(), 0);
        while let Some(item) = stream.try_next().await? {
            match item {
                sqlx::Either::Left(done) => {
                    if statement == last {
                        changed = done.rows_affected();
                    }
                    statement += 1;
                }
                // A prefetch's rows go to its slot, even when it travels as `q` (a flush).
                sqlx::Either::Right(row) => match keep.iter().position(|k| k.0 == statement) {
                    Some(i) => kept[i].1.push(Row::Sqlite(row)),
                    None if statement == last => rows.push(Row::Sqlite(row)),
                    None => {}
                },
            }
        }
        drop(stream);
        for (slot, rows) in kept {
            if let Some(s) = prefetched.get_mut(slot) {
                *s = Some(rows);
            }
        }
        Ok((rows, changed))
    }

    /// Sends whatever is pending on its own.
    async fn flush(&mut self, prefetched: &mut [Option<Vec<Row>>]) -> DbResult<()> {
        if let Some(last) = self.pending.pop() {
            self.run(last, prefetched).await?;
        }
        Ok(())
    }

    async fn commit(&mut self, prefetched: &mut [Option<Vec<Row>>]) -> DbResult<()> {
        // Pending after the `BEGIN`: deferred writes, and prefetches nobody asked for since.
        let writes = self.pending.len().saturating_sub(1 + self.keep.len());
        if !self.begun && writes == 0 {
            // Nothing was sent and nothing is to be written: there is nothing to commit.
            self.pending.clear();
            self.keep.clear();
            self.conn = None;
            return Ok(());
        }
        self.run(sql("COMMIT"), prefetched).await?;
        self.conn = None;
        Ok(())
    }

    async fn rollback(&mut self) -> DbResult<()> {
        self.pending.clear();
        self.keep.clear();
        if self.begun {
            let conn = self.conn()?;
            sqlx::query("ROLLBACK").execute(conn).await?;
        }
        self.conn = None;
        Ok(())
    }
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

/// A Postgres transaction that sends as few statements as is safe: its deferred writes
/// ([`Tx::defer`]) wait for the next statement or the `COMMIT` and go merged where they can
/// ([`statements`]), and its `BEGIN` waits for the first statement that needs it.
///
/// Why: the database's CPU bounds Postgres throughput, and for a small write most of it is the
/// statement itself (a round trip through the kernel and TLS, bind-execute, a snapshot), not the
/// row. Plain reads before the first write run on the transaction's connection on their own:
/// under `READ COMMITTED` each statement takes its own snapshot anyway, and a plain read takes
/// no lock a transaction would hold ([`Q::is_plain_read`]; a locking read begins the
/// transaction). A transaction whose writes all went deferred and merge into one statement
/// sends that statement alone, which Postgres runs atomically: an API write with its outbox
/// (row, event, delivery, job) went from seven statements to two.
struct PgTx {
    conn: PgConn,
    pending: Vec<Q>,
}

enum PgConn {
    /// Nothing but plain reads sent yet: no `BEGIN` either.
    Idle(sqlx::pool::PoolConnection<Postgres>),
    Open(sqlx::Transaction<'static, Postgres>),
    /// Lost to a failed `BEGIN`.
    Gone,
}

/// The most binds one merged statement carries (Postgres allows 65535).
const PG_COMBINED_BINDS: usize = 30_000;

impl PgTx {
    /// The connection for `q`: as it is for a plain read with nothing deferred, else inside the
    /// transaction (begun if need be) once every deferred write has been sent.
    async fn ready(&mut self, q: &Q) -> DbResult<&mut sqlx::PgConnection> {
        if self.pending.is_empty() && q.is_plain_read() {
            return self.conn();
        }
        self.open().await?;
        self.flush().await?;
        self.conn()
    }

    fn conn(&mut self) -> DbResult<&mut sqlx::PgConnection> {
        match &mut self.conn {
            PgConn::Idle(c) => Ok(&mut **c),
            PgConn::Open(t) => Ok(&mut **t),
            PgConn::Gone => Err(DbError::Other(sqlx::Error::PoolClosed)),
        }
    }

    async fn open(&mut self) -> DbResult<()> {
        if matches!(self.conn, PgConn::Idle(_))
            && let PgConn::Idle(c) = std::mem::replace(&mut self.conn, PgConn::Gone)
        {
            self.conn = PgConn::Open(sqlx::Transaction::begin(c, None).await?);
        }
        Ok(())
    }

    /// Sends the deferred writes (the transaction is open).
    async fn flush(&mut self) -> DbResult<()> {
        for q in statements(std::mem::take(&mut self.pending)) {
            q.postgres().execute(self.conn()?).await?;
        }
        Ok(())
    }

    async fn commit(mut self) -> DbResult<()> {
        if let PgConn::Idle(c) = &mut self.conn {
            // Never begun: nothing, or one statement that is atomic on its own.
            let mut todo = statements(std::mem::take(&mut self.pending));
            if todo.len() <= 1 {
                if let Some(q) = todo.pop() {
                    q.postgres().execute(&mut **c).await?;
                }
                return Ok(());
            }
            // (Already merged: `statements` leaves a merged statement as it is.)
            self.pending = todo;
        }
        self.open().await?;
        self.flush().await?;
        match self.conn {
            PgConn::Open(t) => Ok(t.commit().await?),
            _ => Err(DbError::Other(sqlx::Error::PoolClosed)),
        }
    }

    async fn rollback(self) -> DbResult<()> {
        if let PgConn::Open(t) = self.conn {
            t.rollback().await?;
        }
        Ok(())
    }
}

/// Deferred writes as the statements to send, in order: each run of consecutive ones that
/// write different tables and read none merged into one ([`combined`]), any other alone.
fn statements(pending: Vec<Q>) -> Vec<Q> {
    let mut out = Vec::new();
    let mut run: Vec<Q> = Vec::new();
    let mut tables: Vec<String> = Vec::new();
    let mut binds = 0;
    let end_run = |run: &mut Vec<Q>, out: &mut Vec<Q>| match run.len() {
        0 => {}
        1 => out.append(run),
        _ => out.push(combined(std::mem::take(run))),
    };
    for q in pending {
        let table = q.sole_table_written();
        let joins = table
            .as_ref()
            .is_some_and(|t| !tables.contains(t) && binds + q.args.len() <= PG_COMBINED_BINDS);
        if !joins {
            end_run(&mut run, &mut out);
            tables.clear();
            binds = 0;
        }
        match table {
            Some(t) => {
                tables.push(t);
                binds += q.args.len();
                run.push(q);
            }
            None => out.push(q),
        }
    }
    end_run(&mut run, &mut out);
    out
}

/// Writes as one Postgres statement: all but the last become data-modifying `WITH` clauses,
/// with their placeholders renumbered after the binds before them. Every part runs exactly
/// once, on one snapshot, and constraints (foreign keys included) are checked at the end of
/// the statement, so the parts may not depend on each other's rows: hence only writes to
/// different tables that read nothing ([`Q::sole_table_written`]).
fn combined(run: Vec<Q>) -> Q {
    let last = run.len() - 1;
    let mut text = String::from("WITH ");
    let mut args = Vec::with_capacity(run.iter().map(|q| q.args.len()).sum());
    for (i, q) in run.into_iter().enumerate() {
        let offset = args.len();
        let part = rewrite_placeholders(q.text(Dialect::Postgres), |n, out| {
            out.push('$');
            out.push_str(itoa::Buffer::new().format(n + offset));
        });
        if i < last {
            if i > 0 {
                text.push_str(", ");
            }
            text.push('w');
            text.push_str(itoa::Buffer::new().format(i));
            text.push_str(" AS (");
            text.push_str(part.trim_end());
            text.push(')');
        } else {
            text.push(' ');
            text.push_str(&part);
        }
        args.extend(q.args);
    }
    let mut q = sql_built(text);
    q.args = args;
    q
}

impl Tx {
    fn sqlite(conn: Conn, begin: &'static str) -> Tx {
        Tx {
            inner: TxInner::Sqlite(SqliteTx::new(conn, begin)),
            after_commit: Vec::new(),
            notifier: None,
            prefetched: Vec::new(),
        }
    }

    fn postgres(conn: PgConn, n: &notify::Notifier) -> Tx {
        Tx {
            inner: TxInner::Postgres(PgTx {
                conn,
                pending: Vec::new(),
            }),
            after_commit: Vec::new(),
            notifier: Some(n.clone()),
            prefetched: Vec::new(),
        }
    }

    /// Runs `f` once the transaction has committed (never if it rolls back): wake-ups of
    /// workers for the jobs it enqueued, cache evictions.
    pub fn after_commit(&mut self, f: impl FnOnce() + Send + 'static) {
        self.after_commit.push(Box::new(f));
    }

    /// On Postgres, has every instance LISTENing on `channel` woken once the transaction has
    /// committed (see [`notify`] for why not `pg_notify` in the transaction). A no-op on SQLite,
    /// where one process is the only writer and wakes its own in-process.
    pub fn notify_after_commit(&mut self, channel: &'static str) {
        if let Some(n) = self.notifier.clone() {
            self.after_commit(move || n.request(channel));
        }
    }

    /// A read whose rows the caller will want later in the transaction ([`Tx::prefetched`]):
    /// on SQLite it is sent with the next statement, so it costs no round trip of its own while
    /// the writer is held; on Postgres it runs now. Either way it sees the transaction's writes
    /// asked for before it (deferred ones included) and none asked for after.
    pub async fn prefetch(&mut self, q: Q) -> DbResult<Prefetched> {
        let slot = self.prefetched.len();
        match &mut self.inner {
            TxInner::Sqlite(t) => {
                t.keep.push((t.pending.len(), slot));
                t.pending.push(q);
                self.prefetched.push(None);
            }
            TxInner::Postgres(_) => {
                let rows = self.fetch_all(q).await?;
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
            .ok_or(DbError::Other(sqlx::Error::RowNotFound))
    }

    /// A write whose outcome the caller does not need: it is sent with or just before the next
    /// statement or the `COMMIT` (a failure shows there, and fails the transaction all the
    /// same). On SQLite it travels in the same round trip; on Postgres it may be merged with
    /// other deferred writes into one statement ([`PgTx`]). It must return no rows.
    pub async fn defer(&mut self, q: Q) -> DbResult<()> {
        match &mut self.inner {
            TxInner::Sqlite(t) => t.pending.push(q),
            TxInner::Postgres(t) => t.pending.push(q),
        }
        Ok(())
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
            TxInner::Sqlite(mut t) => t.rollback().await?,
            TxInner::Postgres(t) => t.rollback().await?,
        }
        Ok(())
    }

    /// Opens a savepoint: with [`Tx::rollback_to`] one failing item of a batch is undone while
    /// the transaction carries on with the others.
    pub async fn savepoint(&mut self, name: &'static str) -> DbResult<()> {
        sql_built(format!("SAVEPOINT {name}")).execute(self).await?;
        Ok(())
    }

    pub async fn release(&mut self, name: &'static str) -> DbResult<()> {
        sql_built(format!("RELEASE SAVEPOINT {name}"))
            .execute(self)
            .await?;
        Ok(())
    }

    pub async fn rollback_to(&mut self, name: &'static str) -> DbResult<()> {
        sql_built(format!("ROLLBACK TO SAVEPOINT {name}"))
            .execute(self)
            .await?;
        Ok(())
    }
}

impl Exec for Tx {
    fn dialect(&self) -> Dialect {
        match self.inner {
            TxInner::Sqlite(_) => Dialect::Sqlite,
            TxInner::Postgres(_) => Dialect::Postgres,
        }
    }

    async fn fetch_all(&mut self, q: Q) -> DbResult<Vec<Row>> {
        Ok(match &mut self.inner {
            TxInner::Sqlite(t) => t.run(q, &mut self.prefetched).await?.0,
            TxInner::Postgres(t) => q
                .postgres()
                .fetch_all(t.ready(&q).await?)
                .await?
                .into_iter()
                .map(Row::Postgres)
                .collect(),
        })
    }

    async fn fetch_optional(&mut self, q: Q) -> DbResult<Option<Row>> {
        Ok(match &mut self.inner {
            TxInner::Sqlite(_) => self.fetch_all(q).await?.into_iter().next(),
            TxInner::Postgres(t) => q
                .postgres()
                .fetch_optional(t.ready(&q).await?)
                .await?
                .map(Row::Postgres),
        })
    }

    async fn execute(&mut self, q: Q) -> DbResult<u64> {
        Ok(match &mut self.inner {
            TxInner::Sqlite(t) => t.run(q, &mut self.prefetched).await?.1,
            TxInner::Postgres(t) => q
                .postgres()
                .execute(t.ready(&q).await?)
                .await?
                .rows_affected(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_gets_anonymous_placeholders_in_argument_order() {
        let (text, order) = anonymous_placeholders(
            "UPDATE t SET a = $2, b = '$1 stays', c = $2 WHERE id IN ($1, $10) AND d = 'it''s $3'",
        );
        assert_eq!(
            text,
            "UPDATE t SET a = ?, b = '$1 stays', c = ? WHERE id IN (?, ?) AND d = 'it''s $3'"
        );
        assert_eq!(order, vec![1, 1, 0, 9]);
        let (text, order) =
            anonymous_placeholders("SELECT a -- it's $1, not $2\nFROM t WHERE b = $2 - $1");
        assert_eq!(text, "SELECT a -- it's $1, not $2\nFROM t WHERE b = ? - ?");
        assert_eq!(order, vec![1, 0]);
        assert_eq!(
            anonymous_placeholders("SELECT 1"),
            ("SELECT 1".into(), vec![])
        );
    }

    #[test]
    fn sqlite_urls_map_to_paths() {
        assert_eq!(
            sqlite_path("sqlite://rampart-data/rampart.db"),
            Some(PathBuf::from("rampart-data/rampart.db"))
        );
        assert_eq!(
            sqlite_path("sqlite:///var/lib/r.db?mode=rwc"),
            Some(PathBuf::from("/var/lib/r.db"))
        );
        assert_eq!(sqlite_path("postgres://x/y"), None);
    }

    #[test]
    fn only_reads_that_take_no_lock_run_before_begin() {
        for plain in [
            "SELECT id, events FROM webhook_endpoints WHERE org_id = $1",
            "  select count(*) AS n from scratch",
        ] {
            assert!(sql(plain).is_plain_read(), "{plain}");
        }
        for locking in [
            "SELECT seq, hash FROM audit_heads WHERE chain = $1 FOR UPDATE",
            "SELECT id FROM jobs WHERE status = 'queued' LIMIT 5 FOR UPDATE SKIP LOCKED",
            "SELECT id FROM t FOR SHARE",
            "SELECT pg_advisory_xact_lock(7262756179) AS locked",
            "SELECT nextval('s')",
            "SELECT set_config('a', 'b', true)",
            "SELECT 1; DELETE FROM t",
            "WITH x AS (DELETE FROM t RETURNING id) SELECT * FROM x",
            "INSERT INTO t (a) VALUES ($1)",
        ] {
            assert!(!sql(locking).is_plain_read(), "{locking}");
        }
    }

    #[test]
    fn only_writes_to_one_table_that_read_nothing_are_combined() {
        let table = |t: &'static str| sql(t).sole_table_written();
        assert_eq!(
            table("INSERT INTO jobs (id, kind) VALUES ($1, $2)").as_deref(),
            Some("JOBS")
        );
        assert_eq!(
            table("UPDATE deliveries SET a = $1\n WHERE id IN ($2, $3)").as_deref(),
            Some("DELIVERIES")
        );
        assert_eq!(table("delete from t WHERE id = $1").as_deref(), Some("T"));
        for reads in [
            "INSERT INTO t SELECT * FROM u",
            "INSERT INTO t (a) VALUES ($1) RETURNING id",
            "UPDATE t SET a = u.a\nFROM u WHERE t.id = u.id",
            "DELETE FROM t USING u WHERE t.id = u.id",
            "UPDATE t SET a = (SELECT max(b) FROM u)",
            "INSERT INTO t (a) VALUES (1); DELETE FROM u",
            "SELECT 1",
            "WITH x AS (SELECT 1) INSERT INTO t SELECT * FROM x",
        ] {
            assert_eq!(table(reads), None, "{reads}");
        }
    }

    #[test]
    fn combined_writes_renumber_their_placeholders() {
        let q = combined(vec![
            sql("INSERT INTO a (x, y) VALUES ($1, $2) ")
                .bind(1)
                .bind("it's $1"),
            sql("UPDATE b SET x = $1, note = '$1' WHERE id = $2")
                .bind(2)
                .bind(3),
            sql("INSERT INTO c (x) VALUES ($1)").bind(4),
        ]);
        assert_eq!(
            q.text(Dialect::Postgres),
            "WITH w0 AS (INSERT INTO a (x, y) VALUES ($1, $2)), w1 AS (UPDATE b SET x = $3, note = '$1' WHERE id = $4) INSERT INTO c (x) VALUES ($5)"
        );
        assert_eq!(q.args.len(), 5);
    }

    #[test]
    fn writes_are_recognised() {
        assert!(sql("  insert into x values (1)").is_write());
        assert!(sql("UPDATE x SET a = 1").is_write());
        assert!(!sql("SELECT 1").is_write());
    }
}
