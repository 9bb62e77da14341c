-- Issue 23: the members API and the web console.
--
-- One-time set-password links handed out when a member is invited: only the SHA-256 of the
-- token is stored, with its expiry (24 h) and when it was used.
CREATE TABLE password_tokens (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    org_id TEXT NOT NULL REFERENCES orgs (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX password_tokens_user ON password_tokens (user_id);

-- Console sessions: a server-side row named by the SHA-256 of a random cookie. Idle and
-- absolute expiry are checked on every request; sign-out, a password change and removal from
-- the org revoke it.
CREATE TABLE console_sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    org_id TEXT NOT NULL REFERENCES orgs (id),
    environment TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    last_seen_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    revoked_at BIGINT
);
CREATE INDEX console_sessions_user ON console_sessions (user_id, org_id);
