-- Idempotency records and billing events.
CREATE TABLE idempotency_keys (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    environment TEXT NOT NULL,
    idem_key TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('in_flight', 'completed')),
    locked_at BIGINT NOT NULL,
    response_status BIGINT,
    response_body TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    UNIQUE (org_id, environment, idem_key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);

CREATE TABLE billing_events (
    id TEXT PRIMARY KEY,
    type TEXT NOT NULL,
    org_id TEXT,
    outcome TEXT NOT NULL,
    event_created_at BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);

-- Stripe events can arrive out of order: only a newer one changes the subscription.
ALTER TABLE subscriptions ADD COLUMN external_updated_at BIGINT;
-- Per-org plan overrides (NULL: the tier's default from configuration).
ALTER TABLE subscriptions ADD COLUMN rate_limit TEXT;
ALTER TABLE subscriptions ADD COLUMN quota TEXT;
