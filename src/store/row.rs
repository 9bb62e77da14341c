//! Result rows of either store, decoded into structs by `#[derive(sqlx::FromRow)]`.
//!
//! A row struct names its columns once (its fields); [`Record`] is what both drivers can
//! decode. Column values that are domain types (ids, statuses) decode through their own
//! `sqlx::Decode` impls, which refuse a value they do not know; JSON held in TEXT columns
//! decodes through [`JsonText`], which refuses bad JSON rather than reading it as `null`.

use serde::de::DeserializeOwned;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgRow, PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteRow, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Column as _, Decode, Postgres, Row as _, Sqlite, Type};

use super::error::{DbError, DbResult};

/// A struct that decodes from a row of either store: derive `sqlx::FromRow`.
pub trait Record:
    for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin
{
}
impl<T> Record for T where
    T: for<'r> sqlx::FromRow<'r, SqliteRow> + for<'r> sqlx::FromRow<'r, PgRow> + Send + Unpin
{
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
    /// The row as a [`Record`].
    pub fn decode<T: Record>(&self) -> DbResult<T> {
        match self {
            Row::Sqlite(r) => T::from_row(r),
            Row::Postgres(r) => T::from_row(r),
        }
        .map_err(decode_error)
    }

    /// One column by name, for code that learns its columns at run time.
    pub fn get<T: Col>(&self, column: &str) -> DbResult<T> {
        match self {
            Row::Sqlite(r) => r.try_get::<T, _>(column),
            Row::Postgres(r) => r.try_get::<T, _>(column),
        }
        .map_err(decode_error)
    }

    pub(crate) fn get_index<T: Col>(&self, i: usize) -> DbResult<T> {
        match self {
            Row::Sqlite(r) => r.try_get::<T, _>(i),
            Row::Postgres(r) => r.try_get::<T, _>(i),
        }
        .map_err(decode_error)
    }

    pub fn columns(&self) -> Vec<String> {
        match self {
            Row::Sqlite(r) => r.columns().iter().map(|c| c.name().to_owned()).collect(),
            Row::Postgres(r) => r.columns().iter().map(|c| c.name().to_owned()).collect(),
        }
    }
}

fn decode_error(e: sqlx::Error) -> DbError {
    match e {
        sqlx::Error::ColumnDecode { index, source } => DbError::Decode {
            column: index,
            source: sqlx::Error::Decode(source),
        },
        sqlx::Error::ColumnNotFound(column) => DbError::Decode {
            source: sqlx::Error::ColumnNotFound(column.clone()),
            column,
        },
        other => DbError::Decode {
            column: String::new(),
            source: other,
        },
    }
}

/// JSON stored in a TEXT column, decoded into `T`. Text that is not valid JSON (or not a
/// `T`) is a decode error, never a silent `null`.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonText<T>(pub T);

impl<T> JsonText<T> {
    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> Type<Sqlite> for JsonText<T> {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<T> Type<Postgres> for JsonText<T> {
    fn type_info() -> PgTypeInfo {
        <String as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <String as Type<Postgres>>::compatible(ty)
    }
}

impl<'r, T: DeserializeOwned> Decode<'r, Sqlite> for JsonText<T> {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <&str as Decode<Sqlite>>::decode(value)?;
        Ok(JsonText(serde_json::from_str(s)?))
    }
}

impl<'r, T: DeserializeOwned> Decode<'r, Postgres> for JsonText<T> {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let s = <&str as Decode<Postgres>>::decode(value)?;
        Ok(JsonText(serde_json::from_str(s)?))
    }
}

/// Implements decoding from a TEXT column of either store for a domain type held as text
/// (ids, statuses): `text_column!(Type, parse)` where `parse: fn(&str) -> Option<Type>`. A
/// value the type does not accept is a decode error.
macro_rules! text_column {
    ($t:ty, $parse:expr) => {
        impl sqlx::Type<sqlx::Sqlite> for $t {
            fn type_info() -> sqlx::sqlite::SqliteTypeInfo {
                <String as sqlx::Type<sqlx::Sqlite>>::type_info()
            }
            fn compatible(ty: &sqlx::sqlite::SqliteTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Sqlite>>::compatible(ty)
            }
        }
        impl sqlx::Type<sqlx::Postgres> for $t {
            fn type_info() -> sqlx::postgres::PgTypeInfo {
                <String as sqlx::Type<sqlx::Postgres>>::type_info()
            }
            fn compatible(ty: &sqlx::postgres::PgTypeInfo) -> bool {
                <String as sqlx::Type<sqlx::Postgres>>::compatible(ty)
            }
        }
        impl<'r> sqlx::Decode<'r, sqlx::Sqlite> for $t {
            fn decode(
                value: sqlx::sqlite::SqliteValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let s = <&str as sqlx::Decode<sqlx::Sqlite>>::decode(value)?;
                ($parse)(s).ok_or_else(|| format!("unexpected value {s:?} in column").into())
            }
        }
        impl<'r> sqlx::Decode<'r, sqlx::Postgres> for $t {
            fn decode(
                value: sqlx::postgres::PgValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let s = <&str as sqlx::Decode<sqlx::Postgres>>::decode(value)?;
                ($parse)(s).ok_or_else(|| format!("unexpected value {s:?} in column").into())
            }
        }
    };
}
pub(crate) use text_column;
