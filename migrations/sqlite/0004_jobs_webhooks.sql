-- The job queue, domain events (the outbox), webhook endpoints, deliveries, their attempt
-- log, and dead letters.
CREATE TABLE jobs (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    org_id TEXT,
    payload TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'done', 'dead')),
    run_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_token TEXT,
    lease_expires_at BIGINT,
    unique_key TEXT,
    last_error TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX jobs_due ON jobs (status, run_at);
CREATE INDEX jobs_lease ON jobs (status, lease_expires_at);
-- At most one live job per unique key (e.g. one dispatch per scheduled message).
CREATE UNIQUE INDEX jobs_unique_live ON jobs (unique_key) WHERE unique_key IS NOT NULL AND status IN ('queued', 'running');

CREATE TABLE workers (
    worker_id TEXT PRIMARY KEY,
    build_id TEXT NOT NULL,
    hostname TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    last_seen BIGINT NOT NULL,
    stopped_at BIGINT
);

CREATE TABLE events (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    environment TEXT NOT NULL,
    type TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX events_org ON events (org_id, environment, id);

CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    environment TEXT NOT NULL,
    kind TEXT NOT NULL CHECK (kind IN ('events', 'channel')),
    url TEXT NOT NULL,
    description TEXT,
    events TEXT NOT NULL,
    max_retries BIGINT NOT NULL,
    rate_limit BIGINT,
    status TEXT NOT NULL CHECK (status IN ('active', 'paused', 'disabled', 'failed')),
    status_reason TEXT,
    secret_enc TEXT NOT NULL,
    previous_secret_enc TEXT,
    previous_secret_expires_at BIGINT,
    consecutive_failures BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    deleted_at BIGINT
);
CREATE INDEX webhook_endpoints_org ON webhook_endpoints (org_id, environment, id);

CREATE TABLE deliveries (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    environment TEXT NOT NULL,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id),
    event_id TEXT NOT NULL REFERENCES events (id),
    event_type TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'succeeded', 'dead')),
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT,
    last_status_code BIGINT,
    last_error TEXT,
    -- Set when this delivery replays a dead letter: success resolves it.
    dead_letter_id TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id);
CREATE INDEX deliveries_event ON deliveries (event_id);

CREATE TABLE delivery_attempts (
    id TEXT PRIMARY KEY,
    delivery_id TEXT NOT NULL REFERENCES deliveries (id),
    org_id TEXT NOT NULL,
    endpoint_id TEXT NOT NULL,
    attempt BIGINT NOT NULL,
    status_code BIGINT,
    latency_ms BIGINT NOT NULL,
    error_class TEXT,
    error TEXT,
    response_excerpt TEXT,
    request_id TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX delivery_attempts_endpoint ON delivery_attempts (endpoint_id, id);
CREATE INDEX delivery_attempts_created ON delivery_attempts (created_at);

CREATE TABLE dead_letters (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    environment TEXT NOT NULL,
    source TEXT NOT NULL,
    delivery_id TEXT,
    endpoint_id TEXT,
    event_id TEXT,
    event_type TEXT NOT NULL,
    payload TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('open', 'replaying', 'resolved')),
    attempts BIGINT NOT NULL,
    last_error TEXT,
    replay_count BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    resolved_at BIGINT
);
CREATE INDEX dead_letters_org ON dead_letters (org_id, environment, status, id);
CREATE INDEX dead_letters_created ON dead_letters (created_at);

-- Test-mode deliveries: recorded here, never sent over the network.
CREATE TABLE sandbox_deliveries (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    endpoint_id TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    event_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    url TEXT NOT NULL,
    headers TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL
);
CREATE INDEX sandbox_deliveries_org ON sandbox_deliveries (org_id, id);
