//! One store type over two native drivers (SQLite and Postgres) sharing SQL text.
//!
//! Queries are written once with `$N` placeholders and portable types (TEXT ids, BIGINT
//! epoch-millisecond times, TEXT JSON, BOOLEAN) and run on either pool; where the dialects
//! differ, a query carries one text per dialect. Every query says where it is written what it
//! does ([`Q::read`] or [`Q::write`]), every deferred write says so at its call
//! ([`Tx::defer`], [`Tx::defer_merged`]), and every transaction how it begins ([`Db::begin`],
//! [`Db::begin_at_first_write`], [`Db::begin_snapshot`]): nothing is inferred from SQL text.
//! Rows decode into structs by `#[derive(sqlx::FromRow)]` ([`Record`]).
//! See `docs/ARCHITECTURE.md` for the design.

pub mod batch;
pub mod catalog;
pub mod checkpoint;
mod db;
mod deferred;
mod error;
mod exec;
mod fetch;
pub mod foreign_text;
pub mod migrate;
pub mod notify;
mod pg_tx;
mod query;
mod row;
mod sql_text;
mod sqlite_tx;
mod tx;
pub mod writer;

pub use db::{ConnectOptions, Db, SqliteDurability};
pub use deferred::Table;
pub use error::{Constraint, DbError, DbResult};
pub use exec::Exec;
pub use query::{Access, Arg, Dialect, Plan, Q};
pub(crate) use row::text_column;
pub use row::{Col, JsonText, Record, Row};
pub use tx::{Prefetched, Tx};

/// Inserts many rows with multi-row `INSERT … VALUES (…), (…)` statements: one statement per
/// chunk instead of one per row. `head` is `INSERT INTO t (a, b, c)`; every row has the same
/// number of values; `tail` (e.g. `ON CONFLICT DO NOTHING`) follows each chunk.
pub async fn insert_many(
    ex: &mut impl Exec,
    head: &'static str,
    tail: &'static str,
    rows: Vec<Vec<Arg>>,
) -> DbResult<u64> {
    let mut total = 0;
    for q in sql_text::insert_statements(head, tail, rows) {
        total += q.execute(ex).await?;
    }
    Ok(total)
}
