-- Asynchronous org exports (NDJSON, downloadable through a signed, time-limited link).
CREATE TABLE exports (
    id TEXT PRIMARY KEY,
    org_id TEXT NOT NULL REFERENCES orgs (id),
    environment TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('pending', 'ready', 'failed')),
    requested_by TEXT,
    content TEXT,
    bytes BIGINT,
    sha256 TEXT,
    error TEXT,
    created_at BIGINT NOT NULL,
    completed_at BIGINT
);
CREATE INDEX exports_org ON exports (org_id, environment, id);
