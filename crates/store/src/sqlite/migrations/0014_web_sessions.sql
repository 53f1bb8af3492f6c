-- Browser sessions of the web interface. Like API tokens, only the SHA-256
-- of the cookie's value is stored, so a copy of the database signs no one in.
CREATE TABLE web_sessions (
    token_hash TEXT PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    created_at INTEGER NOT NULL,
    -- A session ends at this time whatever happens; signing out ends it sooner.
    expires_at INTEGER NOT NULL
);
CREATE INDEX web_sessions_by_expiry ON web_sessions (expires_at);
