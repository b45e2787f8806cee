-- The console's sessions: a console login is a row in `sessions` like any other (so
-- logout, a password change or a reset revoke it the same way), plus the SHA-256 of the
-- secret in its cookie. Only the hash is stored: a copy of the table lets nobody in.
-- NULL for sessions started through `POST /auth/login` (they use tokens, not a cookie).
-- For a console session `last_refreshed_at` is its last activity: it ends after
-- REFRESH_TOKEN_TTL without a request, like an unrefreshed token session.
ALTER TABLE sessions
    ADD COLUMN console_secret_hash bytea CHECK (octet_length(console_secret_hash) = 32);
