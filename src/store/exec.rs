//! Something queries run on: the pool ([`Db`]) or an open transaction ([`super::Tx`]).

use std::future::Future;

use super::error::DbResult;
use super::query::{Dialect, Q};
use super::row::Row;

pub trait Exec: Send {
    fn dialect(&self) -> Dialect;
    fn query_rows(&mut self, q: Q) -> impl Future<Output = DbResult<Vec<Row>>> + Send;
    fn query_row(&mut self, q: Q) -> impl Future<Output = DbResult<Option<Row>>> + Send;
    fn execute(&mut self, q: Q) -> impl Future<Output = DbResult<u64>> + Send;
}
