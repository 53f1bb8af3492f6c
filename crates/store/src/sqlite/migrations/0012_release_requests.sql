-- Release requests (R24): a version's way to a guarded environment, through
-- testing on a staging environment and an approval, with its history.

-- Deployments to the environment need an approved request (or an emergency
-- rollback by a user with the production right).
ALTER TABLE environments ADD COLUMN requires_approval INTEGER NOT NULL DEFAULT 0;
-- Where a request for this environment is tested first; NULL: nowhere.
ALTER TABLE environments ADD COLUMN staging_env_id INTEGER REFERENCES environments(id);

CREATE TABLE release_requests (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id   INTEGER NOT NULL REFERENCES projects(id),
    env_id       INTEGER NOT NULL REFERENCES environments(id),
    -- release or rollback
    kind         TEXT NOT NULL,
    -- ferry_domain::request::RequestState, changed only from the state the
    -- change was decided on (compare and set).
    state        TEXT NOT NULL,
    -- The version asked for; a resubmission replaces it.
    release_id   INTEGER NOT NULL REFERENCES releases(id),
    build_number INTEGER,
    reason       TEXT NOT NULL,
    requester    TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL
);
CREATE INDEX release_requests_by_project ON release_requests (project_id, id);
CREATE INDEX release_requests_by_state ON release_requests (state);

-- Who did what when; append-only.
CREATE TABLE release_request_events (
    request_id    INTEGER NOT NULL REFERENCES release_requests(id),
    seq           INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    actor         TEXT NOT NULL,
    -- a RequestAction, or "staging" for an update of the staging environment
    action        TEXT NOT NULL,
    from_state    TEXT,
    to_state      TEXT NOT NULL,
    version       TEXT,
    note          TEXT,
    deployment_id INTEGER,
    PRIMARY KEY (request_id, seq)
);

-- The request a deployment was made for: its staging updates and its
-- release. The link lives here so a deployment created just before a crash
-- is still found.
ALTER TABLE deployments ADD COLUMN request_id INTEGER REFERENCES release_requests(id);
CREATE INDEX deployments_by_request ON deployments (request_id) WHERE request_id IS NOT NULL;

-- Sign-in lockout: failed attempts in a row, and until when the account
-- refuses passwords.
ALTER TABLE users ADD COLUMN failed_logins INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN locked_until INTEGER;
