//! Running a [`Q`] on an [`Exec`] and decoding what comes back.

use super::error::{DbError, DbResult};
use super::exec::Exec;
use super::query::Q;
use super::row::{Col, Record, Row};

impl Q {
    /// Every row, decoded.
    pub async fn fetch_all<T: Record>(self, ex: &mut impl Exec) -> DbResult<Vec<T>> {
        ex.query_rows(self).await?.iter().map(Row::decode).collect()
    }

    /// The row, if there is one.
    pub async fn fetch_optional<T: Record>(self, ex: &mut impl Exec) -> DbResult<Option<T>> {
        ex.query_row(self)
            .await?
            .as_ref()
            .map(Row::decode)
            .transpose()
    }

    /// The row; [`DbError::NotFound`] if there is none.
    pub async fn fetch_one<T: Record>(self, ex: &mut impl Exec) -> DbResult<T> {
        self.fetch_optional(ex).await?.ok_or(DbError::NotFound)
    }

    /// The first column of the one row (`SELECT COUNT(*) …`).
    pub async fn fetch_scalar<T: Col>(self, ex: &mut impl Exec) -> DbResult<T> {
        ex.query_row(self)
            .await?
            .ok_or(DbError::NotFound)?
            .get_index(0)
    }

    /// The first column of every row.
    pub async fn fetch_column<T: Col>(self, ex: &mut impl Exec) -> DbResult<Vec<T>> {
        ex.query_rows(self)
            .await?
            .iter()
            .map(|r| r.get_index(0))
            .collect()
    }

    /// Rows as they come, for code that reads columns it learns at run time (backups, test
    /// assertions).
    pub async fn fetch_rows(self, ex: &mut impl Exec) -> DbResult<Vec<Row>> {
        ex.query_rows(self).await
    }

    /// The one row as it comes ([`DbError::NotFound`] if there is none): see [`Q::fetch_rows`].
    pub async fn fetch_row(self, ex: &mut impl Exec) -> DbResult<Row> {
        ex.query_row(self).await?.ok_or(DbError::NotFound)
    }

    /// How many rows the statement changed.
    pub async fn execute(self, ex: &mut impl Exec) -> DbResult<u64> {
        ex.execute(self).await
    }
}
