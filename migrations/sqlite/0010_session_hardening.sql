-- Issue 22, findings 6 and 7.
--
-- A refresh token keeps the claims of the access token issued with it (not secret: the token
-- is their HMAC under a key that is not in the database), so that a retried refresh within
-- the reuse interval can be answered with the very same pair. The refresh token itself is
-- derived from its predecessor under the server key, never stored (see docs/SECURITY.md).
ALTER TABLE refresh_tokens ADD COLUMN access_claims TEXT;

-- Device tokens (OWASP "device cookies"): returned by a successful login, presented at the
-- next one to sign in despite the per-account limit. Stored as SHA-256, bound to the user,
-- with an expiry; a token that fails too often is locked for good.
CREATE TABLE device_tokens (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    failures BIGINT NOT NULL DEFAULT 0,
    locked_at BIGINT
);
CREATE INDEX device_tokens_user ON device_tokens (user_id, expires_at);
