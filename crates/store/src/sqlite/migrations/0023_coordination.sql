-- What several server processes on one database need (see the
-- Coordination trait): named leases, build and notification claims with an
-- expiry, and cross-process wake-ups.

CREATE TABLE leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);

-- A running build's server and until when it has promised to renew. A build
-- running from before this migration has none and counts as expired.
ALTER TABLE builds ADD COLUMN lease_holder TEXT;
ALTER TABLE builds ADD COLUMN lease_expires_at INTEGER;

-- The server that claimed a due notification; the claim lasts until
-- next_attempt_at, which the claim moves forward.
ALTER TABLE notifications ADD COLUMN claimed_by TEXT;

CREATE TABLE wakes (
    seq   INTEGER PRIMARY KEY AUTOINCREMENT,
    topic TEXT NOT NULL,
    at    INTEGER NOT NULL
);
CREATE INDEX wakes_at ON wakes (at);
