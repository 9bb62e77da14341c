-- Postgres also drops the foreign keys of the delivery pipeline's tables in this version (see
-- migrations/postgres/0008_dispatch.sql). SQLite keeps them: it cannot drop a constraint
-- without rebuilding the table, and its checks are in-process B-tree lookups that take no row
-- locks, so they cost little.

-- The scheduler no longer leases items between two transactions: it takes and dispatches a
-- batch in one (src/scheduled/mod.rs), so no item is left `dispatching`. One that an earlier
-- version left so is pending again; should that version still be dispatching it, its final
-- update (fenced on `dispatching` and its lease) now matches nothing and rolls it back.
UPDATE scheduled_messages SET status = 'pending', lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL
WHERE status = 'dispatching';

-- The scheduler looks only for pending items: a partial index holds just those, and taking an
-- item (pending -> dispatched) removes it from the index instead of adding a new entry.
DROP INDEX IF EXISTS scheduled_messages_due;
CREATE INDEX scheduled_messages_pending ON scheduled_messages (send_at) WHERE status = 'pending';
