//! Events' SQL.

use super::Event;
use crate::access::principal::Tenant;
use crate::store::{Arg, DbResult, Table, Tx};

/// Inserts `events` as deferred, mergeable multi-row inserts: nothing in the transaction reads
/// them back before it commits.
pub(super) async fn insert_many(
    tx: &mut Tx,
    tenant: &Tenant,
    events: &[Event],
    now: i64,
) -> DbResult<()> {
    let rows = events
        .iter()
        .map(|e| {
            vec![
                Arg::from(&e.id),
                Arg::from(tenant.org()),
                Arg::from(tenant.env()),
                Arg::from(e.event_type),
                Arg::from(&e.payload),
                Arg::from(now),
            ]
        })
        .collect();
    tx.defer_insert_many(
        Table::EVENTS,
        "INSERT INTO events (id, org_id, environment, type, payload, created_at)",
        "",
        rows,
    )
    .await
}
