-- API keys, refresh tokens, the hash-chained audit log, and contacts (the first resource).
CREATE TABLE api_keys (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    name TEXT NOT NULL,
    environment TEXT NOT NULL CHECK (environment IN ('live', 'test')),
    -- The first characters of the key, safe to show ("rk_live_AbCd").
    display_prefix TEXT NOT NULL,
    -- SHA-256 (hex) of the whole key; the key itself is never stored.
    secret_hash TEXT NOT NULL UNIQUE,
    -- After a rotation with a grace period, the old key keeps working until previous_expires_at.
    previous_hash TEXT UNIQUE,
    previous_expires_at BIGINT,
    scopes TEXT NOT NULL,
    permissions TEXT NOT NULL,
    rate_limit TEXT,
    quota TEXT,
    expires_at BIGINT,
    revoked_at BIGINT,
    last_used_at BIGINT,
    created_by TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX api_keys_org ON api_keys (org_id, id);

CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    family_id TEXT NOT NULL,
    user_id TEXT NOT NULL REFERENCES users (id),
    org_id TEXT NOT NULL REFERENCES orgs (id),
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT
);
CREATE INDEX refresh_tokens_family ON refresh_tokens (family_id);

-- One hash chain per org ("_system" for events with no org, e.g. a login for an unknown email).
CREATE TABLE audit_logs (
    id TEXT PRIMARY KEY,
    chain TEXT NOT NULL,
    seq BIGINT NOT NULL,
    org_id TEXT,
    actor_type TEXT NOT NULL,
    actor_id TEXT,
    action TEXT NOT NULL,
    target_type TEXT,
    target_id TEXT,
    outcome TEXT NOT NULL,
    request_id TEXT,
    ip TEXT,
    user_agent TEXT,
    details TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL,
    UNIQUE (chain, seq)
);
CREATE INDEX audit_logs_org ON audit_logs (org_id, id);

CREATE TABLE audit_heads (
    chain TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    hash TEXT NOT NULL
);

CREATE TABLE contacts (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    environment TEXT NOT NULL CHECK (environment IN ('live', 'test')),
    -- NULL once erased: the tombstone keeps only a hash of it.
    external_key TEXT,
    external_key_hash TEXT NOT NULL,
    name TEXT,
    email TEXT,
    phone TEXT,
    attributes TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    erased_at BIGINT,
    UNIQUE (org_id, environment, external_key)
);
CREATE INDEX contacts_org ON contacts (org_id, environment, id);
