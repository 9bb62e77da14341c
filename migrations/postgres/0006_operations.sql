-- Incidents and components for the status page, uptime samples, alert state, branding.
CREATE TABLE incidents (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    impact TEXT NOT NULL CHECK (impact IN ('none', 'minor', 'major', 'critical')),
    status TEXT NOT NULL CHECK (status IN ('investigating', 'identified', 'monitoring', 'resolved')),
    components TEXT NOT NULL,
    created_by TEXT,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    resolved_at BIGINT
);
CREATE INDEX incidents_open ON incidents (status, created_at);

CREATE TABLE incident_updates (
    id TEXT PRIMARY KEY,
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    status TEXT NOT NULL,
    message TEXT NOT NULL,
    created_by TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX incident_updates_incident ON incident_updates (incident_id, created_at);

-- One row per component per sampling minute: the 90-day uptime history.
CREATE TABLE health_samples (
    id TEXT PRIMARY KEY,
    component TEXT NOT NULL,
    status TEXT NOT NULL,
    taken_at BIGINT NOT NULL
);
CREATE INDEX health_samples_component ON health_samples (component, taken_at);
CREATE INDEX health_samples_taken ON health_samples (taken_at);

-- Which alerts are active, so that a start or an end is announced once per deployment.
CREATE TABLE alert_state (
    name TEXT PRIMARY KEY,
    active BOOLEAN NOT NULL,
    message TEXT,
    changed_at BIGINT NOT NULL
);

CREATE TABLE branding (
    org_id TEXT PRIMARY KEY REFERENCES orgs (id),
    name TEXT NOT NULL,
    primary_color TEXT,
    accent_color TEXT,
    logo_url TEXT,
    updated_at BIGINT NOT NULL
);
