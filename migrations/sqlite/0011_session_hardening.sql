-- Issue 22, finding 6.
--
-- A refresh token keeps the claims of the access token issued with it (not secret: the token
-- is their HMAC under a key that is not in the database), so that a retried refresh within
-- the reuse interval can be answered with the very same pair. The refresh token itself is
-- derived from its predecessor under the server key, never stored (see docs/SECURITY.md).
ALTER TABLE refresh_tokens ADD COLUMN access_claims TEXT;

