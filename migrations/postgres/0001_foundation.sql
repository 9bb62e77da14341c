-- Tenants, people and plans. Times are epoch milliseconds (BIGINT) in every table.
CREATE TABLE orgs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    is_platform BOOLEAN NOT NULL DEFAULT FALSE,
    parent_org_id TEXT REFERENCES orgs (id),
    created_at BIGINT NOT NULL
);
CREATE INDEX orgs_parent ON orgs (parent_org_id, id);

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    disabled_at BIGINT
);

CREATE TABLE memberships (
    org_id TEXT NOT NULL REFERENCES orgs (id),
    user_id TEXT NOT NULL REFERENCES users (id),
    role TEXT NOT NULL CHECK (role IN ('owner', 'admin', 'developer', 'viewer')),
    created_at BIGINT NOT NULL,
    PRIMARY KEY (org_id, user_id)
);
CREATE INDEX memberships_user ON memberships (user_id);

CREATE TABLE subscriptions (
    org_id TEXT PRIMARY KEY REFERENCES orgs (id),
    status TEXT NOT NULL CHECK (status IN ('active', 'trialing', 'past_due', 'canceled')),
    tier TEXT NOT NULL CHECK (tier IN ('standard', 'full')),
    source TEXT NOT NULL,
    external_id TEXT,
    updated_at BIGINT NOT NULL
);

-- Instance-wide facts, e.g. the fingerprint of the secret key the data was written with.
CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
