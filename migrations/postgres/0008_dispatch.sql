-- The delivery pipeline's tables (events, deliveries, delivery_attempts, messages) carry no
-- foreign keys on Postgres. Each row is written by server code in the same transaction that
-- read its parents with org scoping (the tenant from the API key, the conversation, the
-- endpoints of the fan-out), orgs and conversations are never deleted, endpoints only
-- soft-deleted, and the retention purge deletes children before parents. What the
-- constraints added was a per-row check that locks the parent row (FOR KEY SHARE): seven
-- per dispatched scheduled message, all on the same few hot rows (the org, the conversation,
-- the channel endpoint). Measured on the 10,000-message burst, all else equal: dispatch p99
-- 1.5-1.7 s with them, 1.1-1.2 s without (docs/ARCHITECTURE.md, "Foreign keys").
ALTER TABLE events DROP CONSTRAINT IF EXISTS events_org_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_org_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_endpoint_id_fkey;
ALTER TABLE deliveries DROP CONSTRAINT IF EXISTS deliveries_event_id_fkey;
ALTER TABLE delivery_attempts DROP CONSTRAINT IF EXISTS delivery_attempts_delivery_id_fkey;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_org_id_fkey;
ALTER TABLE messages DROP CONSTRAINT IF EXISTS messages_conversation_id_fkey;

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
