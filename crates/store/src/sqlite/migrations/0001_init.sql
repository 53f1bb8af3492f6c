-- Ferry schema, version 1. Times are milliseconds since the epoch (UTC).

CREATE TABLE settings (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE users (
    id         INTEGER PRIMARY KEY,
    name       TEXT NOT NULL UNIQUE,
    is_admin   INTEGER NOT NULL,
    created_at INTEGER NOT NULL
);

-- Only the SHA-256 of a token is stored; the token is shown once.
CREATE TABLE api_tokens (
    id         INTEGER PRIMARY KEY,
    user_id    INTEGER NOT NULL REFERENCES users(id),
    name       TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);

CREATE TABLE projects (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    keep_releases INTEGER NOT NULL,
    created_at    INTEGER NOT NULL
);

CREATE TABLE releases (
    id              INTEGER PRIMARY KEY,
    project_id      INTEGER NOT NULL REFERENCES projects(id),
    version         TEXT NOT NULL,
    branch          TEXT NOT NULL,
    committer       TEXT NOT NULL,
    manifest_digest TEXT NOT NULL,
    file_count      INTEGER NOT NULL,
    total_size      INTEGER NOT NULL,
    created_by      TEXT NOT NULL,
    created_at      INTEGER NOT NULL,
    UNIQUE (project_id, version)
);

CREATE TABLE environments (
    id                 INTEGER PRIMARY KEY,
    project_id         INTEGER NOT NULL REFERENCES projects(id),
    name               TEXT NOT NULL,
    selector           TEXT NOT NULL,
    desired_release_id INTEGER REFERENCES releases(id),
    created_at         INTEGER NOT NULL,
    UNIQUE (project_id, name)
);

CREATE TABLE hosts (
    id            INTEGER PRIMARY KEY,
    name          TEXT NOT NULL UNIQUE,
    tags          TEXT NOT NULL,
    token_hash    TEXT NOT NULL UNIQUE,
    agent_version TEXT,
    online        INTEGER NOT NULL DEFAULT 0,
    last_seen_at  INTEGER,
    enrolled_at   INTEGER NOT NULL
);

-- What each host should run, per project (one environment per project per host).
CREATE TABLE host_desired (
    host_id    INTEGER NOT NULL REFERENCES hosts(id),
    project_id INTEGER NOT NULL REFERENCES projects(id),
    env_id     INTEGER NOT NULL REFERENCES environments(id),
    release_id INTEGER NOT NULL REFERENCES releases(id),
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (host_id, project_id)
);

-- What each host last reported, per project.
CREATE TABLE host_actual (
    host_id      INTEGER NOT NULL REFERENCES hosts(id),
    project_id   INTEGER NOT NULL REFERENCES projects(id),
    release_id   INTEGER,
    release_name TEXT,
    version      TEXT,
    activity     TEXT NOT NULL,
    error        TEXT,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (host_id, project_id)
);

CREATE TABLE deployments (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id         INTEGER NOT NULL REFERENCES projects(id),
    env_id             INTEGER NOT NULL REFERENCES environments(id),
    release_id         INTEGER NOT NULL REFERENCES releases(id),
    kind               TEXT NOT NULL,
    status             TEXT NOT NULL,
    created_by         TEXT NOT NULL,
    offline_timeout_ms INTEGER NOT NULL,
    created_at         INTEGER NOT NULL,
    finished_at        INTEGER
);

-- R19: at most one running deployment per project and environment, enforced
-- by the database so that two servers (or two requests) cannot both win.
CREATE UNIQUE INDEX deployments_one_running ON deployments (project_id, env_id) WHERE status = 'running';
CREATE INDEX deployments_by_project ON deployments (project_id, id);

CREATE TABLE deployment_hosts (
    deployment_id    INTEGER NOT NULL REFERENCES deployments(id),
    host_id          INTEGER NOT NULL REFERENCES hosts(id),
    release_name     TEXT NOT NULL,
    state            TEXT NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER,
    error            TEXT,
    bytes_downloaded INTEGER NOT NULL DEFAULT 0,
    bytes_reused     INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (deployment_id, host_id)
);
CREATE INDEX deployment_hosts_by_host ON deployment_hosts (host_id, state);
