//! A write a transaction holds back until its next statement or its `COMMIT`, the table it
//! names, and when a Postgres transaction sends its `BEGIN`: shared by [`super::Tx`] and the two
//! stores' transaction types.

use super::query::Q;

/// The table a deferred write changes: it names the write in errors, and on Postgres two
/// mergeable writes share a statement only if their tables differ.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Table(&'static str);

impl Table {
    pub const CONTACTS: Table = Table("contacts");
    pub const MESSAGES: Table = Table("messages");
    pub const EVENTS: Table = Table("events");
    pub const DELIVERIES: Table = Table("deliveries");
    pub const DELIVERY_ATTEMPTS: Table = Table("delivery_attempts");
    pub const DELIVERY_HOURLY: Table = Table("delivery_hourly");
    pub const JOBS: Table = Table("jobs");
    pub const WEBHOOK_ENDPOINTS: Table = Table("webhook_endpoints");

    /// Another table (tests write scratch tables).
    pub const fn named(name: &'static str) -> Table {
        Table(name)
    }

    pub fn as_str(self) -> &'static str {
        self.0
    }
}

/// A write waiting to be sent.
pub(crate) struct Deferred {
    pub q: Q,
    pub table: Table,
    /// Declared by the caller: writes only `table`, reads nothing, returns nothing, so it may
    /// share one Postgres statement with neighbours writing other tables.
    pub mergeable: bool,
}

impl Deferred {
    /// How an error names this write.
    pub fn name(&self) -> String {
        format!("{}: {}", self.table.as_str(), self.q.head())
    }
}

/// When a Postgres transaction sends its `BEGIN` (see [`super::Db::begin_at_first_write`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum PgBegin {
    AtFirstStatement,
    AtFirstWrite,
}
