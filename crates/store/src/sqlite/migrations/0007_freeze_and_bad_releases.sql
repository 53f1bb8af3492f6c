-- Freezes of environments and bad marks on releases: what stops a deployment
-- before it starts, besides a running one (R19).

-- A release someone marked bad: rollbacks skip it, deployments refuse it
-- unless forced. All three are set together, or none.
ALTER TABLE releases ADD COLUMN bad_by TEXT;
ALTER TABLE releases ADD COLUMN bad_reason TEXT;
ALTER TABLE releases ADD COLUMN bad_at INTEGER;

-- Set when a deployment went ahead although its release was marked bad
-- (--force), or although its environment was frozen (an emergency): the
-- record says the rule was overridden, not that it was absent.
ALTER TABLE deployments ADD COLUMN forced INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN freeze_ignored INTEGER NOT NULL DEFAULT 0;

-- At most one freeze per environment, taken by hand. It applies while
-- created_at <= now < expires_at; the server passes `now`, so an expired
-- row stops applying by itself and is replaced or removed when next touched.
CREATE TABLE freezes (
    env_id     INTEGER PRIMARY KEY REFERENCES environments(id),
    owner      TEXT NOT NULL,
    reason     TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
