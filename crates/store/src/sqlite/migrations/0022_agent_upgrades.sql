-- Agent self-upgrade: the binaries the server holds, the upgrade of an
-- environment's agents, batch by batch, and what each host runs.

-- The version label and the SHA-256 of the executable each host's agent
-- announced at its last connection (NULL from agents that predate it).
ALTER TABLE hosts ADD COLUMN agent_binary TEXT;
ALTER TABLE hosts ADD COLUMN agent_digest TEXT;

-- Uploaded agent binaries (`ferry agent-upgrade upload`). The bytes live in
-- DATA/agent-binaries/<sha256>; `signature` is the server's Ed25519
-- signature (hex) over the sha256 and the version, which agents check.
CREATE TABLE agent_binaries (
    id          INTEGER PRIMARY KEY,
    version     TEXT NOT NULL UNIQUE,
    sha256      TEXT NOT NULL,
    size        INTEGER NOT NULL,
    signature   TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    uploaded_at INTEGER NOT NULL
);

-- One upgrade of an environment's agents to a binary: running, succeeded
-- or failed (with the reason). At most one runs per environment.
CREATE TABLE agent_upgrades (
    id          INTEGER PRIMARY KEY,
    env_id      INTEGER NOT NULL REFERENCES environments(id) ON DELETE CASCADE,
    binary_id   INTEGER NOT NULL REFERENCES agent_binaries(id),
    status      TEXT NOT NULL,
    error       TEXT,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE UNIQUE INDEX agent_upgrades_one_running ON agent_upgrades(env_id) WHERE status = 'running';

-- Each host of an upgrade, in its batch: queued, upgrading, done, failed
-- (with the reason) or skipped (the upgrade stopped before its batch).
CREATE TABLE agent_upgrade_hosts (
    upgrade_id INTEGER NOT NULL REFERENCES agent_upgrades(id) ON DELETE CASCADE,
    host_id    INTEGER NOT NULL REFERENCES hosts(id),
    batch      INTEGER NOT NULL,
    state      TEXT NOT NULL,
    error      TEXT,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (upgrade_id, host_id)
);
CREATE INDEX agent_upgrade_hosts_host ON agent_upgrade_hosts(host_id, state);
