-- Variables kept out of the repository (R17), per project, environment, host,
-- or host within one environment. `value` is what the server gives: plain
-- text, or for a secret its sealed (encrypted) form; the database never sees a
-- secret in the clear.
CREATE TABLE vars (
    id         INTEGER PRIMARY KEY,
    project_id INTEGER NOT NULL REFERENCES projects(id),
    env_id     INTEGER REFERENCES environments(id),
    host_id    INTEGER REFERENCES hosts(id),
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    secret     INTEGER NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);
-- One value per name and scope; NULL (any) counts as one scope, not many.
CREATE UNIQUE INDEX vars_one_per_scope ON vars (project_id, IFNULL(env_id, 0), IFNULL(host_id, 0), key);
CREATE INDEX vars_by_host ON vars (host_id);
