//! Something queries run on: the pool ([`Db`]) or an open transaction ([`super::Tx`]).

use std::future::Future;

use super::db::Db;
use super::error::DbResult;
use super::query::{Access, Dialect, Q};
use super::row::Row;

pub trait Exec: Send {
    fn dialect(&self) -> Dialect;
    fn query_rows(&mut self, q: Q) -> impl Future<Output = DbResult<Vec<Row>>> + Send;
    fn query_row(&mut self, q: Q) -> impl Future<Output = DbResult<Option<Row>>> + Send;
    fn execute(&mut self, q: Q) -> impl Future<Output = DbResult<u64>> + Send;
}

/// On the pool, each query is its own transaction. On SQLite a declared read goes to the
/// readers' pool and a write to the one writer connection.
impl Exec for Db {
    fn dialect(&self) -> Dialect {
        Db::dialect(self)
    }

    async fn query_rows(&mut self, q: Q) -> DbResult<Vec<Row>> {
        Ok(match self {
            Db::Sqlite { read, write, .. } => {
                let rows = match q.access() {
                    Access::Read => q.sqlite().fetch_all(&*read).await?,
                    Access::Write => q.sqlite().fetch_all(write.acquire().await?.get()?).await?,
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

    async fn query_row(&mut self, q: Q) -> DbResult<Option<Row>> {
        Ok(match self {
            Db::Sqlite { read, write, .. } => {
                let row = match q.access() {
                    Access::Read => q.sqlite().fetch_optional(&*read).await?,
                    Access::Write => {
                        q.sqlite()
                            .fetch_optional(write.acquire().await?.get()?)
                            .await?
                    }
                };
                row.map(Row::Sqlite)
            }
            Db::Postgres(p, _) => q.postgres().fetch_optional(&*p).await?.map(Row::Postgres),
        })
    }

    async fn execute(&mut self, q: Q) -> DbResult<u64> {
        Ok(match self {
            Db::Sqlite { read, write, .. } => match q.access() {
                Access::Read => q.sqlite().execute(&*read).await?.rows_affected(),
                Access::Write => q
                    .sqlite()
                    .execute(write.acquire().await?.get()?)
                    .await?
                    .rows_affected(),
            },
            Db::Postgres(p, _) => q.postgres().execute(&*p).await?.rows_affected(),
        })
    }
}
