//! The store under the API: transactions, SQLite checkpoints, and on Postgres an outage and a
//! server whose default isolation is not the code's.

mod checkpoints;
pub mod faults;
mod group_commit;
mod isolation;
mod transactions;

pub fn scenarios() -> Vec<(&'static str, crate::Scenario)> {
    [
        transactions::scenarios(),
        checkpoints::scenarios(),
        group_commit::scenarios(),
    ]
    .concat()
}

/// Tests that need Postgres (ignored without `RAMPART_TEST_POSTGRES_URL`).
pub fn postgres_only() -> Vec<(&'static str, crate::Plain)> {
    [faults::postgres_only(), isolation::postgres_only()].concat()
}
