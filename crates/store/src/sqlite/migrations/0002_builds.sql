-- Builds from git (R5-R8, R25, R30).

-- Where a project's source lives; NULL for upload-only projects.
ALTER TABLE projects ADD COLUMN repo_url TEXT;
ALTER TABLE projects ADD COLUMN webhook_secret TEXT;
-- JSON list of branch patterns that build on push; empty = all branches.
ALTER TABLE projects ADD COLUMN branches TEXT NOT NULL DEFAULT '[]';
ALTER TABLE projects ADD COLUMN push_tags INTEGER NOT NULL DEFAULT 0;

-- Successful builds of this branch deploy here at once.
ALTER TABLE environments ADD COLUMN auto_deploy_branch TEXT;

ALTER TABLE releases ADD COLUMN build_id INTEGER;
ALTER TABLE releases ADD COLUMN commit_sha TEXT;
ALTER TABLE releases ADD COLUMN committed_at INTEGER;

CREATE TABLE builds (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id       INTEGER NOT NULL REFERENCES projects(id),
    number           INTEGER NOT NULL,
    git_ref          TEXT NOT NULL,
    commit_sha       TEXT,
    branch           TEXT,
    tag              TEXT,
    author           TEXT,
    message          TEXT,
    committed_at     INTEGER,
    status           TEXT NOT NULL,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    version          TEXT,
    release_id       INTEGER REFERENCES releases(id),
    error            TEXT,
    trigger          TEXT NOT NULL,
    requested_by     TEXT NOT NULL,
    retry_of         INTEGER,
    created_at       INTEGER NOT NULL,
    started_at       INTEGER,
    finished_at      INTEGER
);
CREATE UNIQUE INDEX builds_number ON builds (project_id, number);
-- R6: never two builds of one project at once, enforced by the database.
CREATE UNIQUE INDEX builds_one_running ON builds (project_id) WHERE status = 'running';
CREATE INDEX builds_queue ON builds (status, id);

CREATE TABLE build_logs (
    build_id INTEGER NOT NULL REFERENCES builds(id),
    seq      INTEGER NOT NULL,
    at       INTEGER NOT NULL,
    stream   TEXT NOT NULL,
    line     TEXT NOT NULL,
    PRIMARY KEY (build_id, seq)
);

-- Delivery ids already handled, so a redelivered webhook starts nothing.
CREATE TABLE webhook_deliveries (
    project_id  INTEGER NOT NULL REFERENCES projects(id),
    forge       TEXT NOT NULL,
    delivery_id TEXT NOT NULL,
    received_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, forge, delivery_id)
);
