-- Trust boundaries of the fleet.
-- A host's tags are fixed at enrolment and changed only by an administrator
-- (`ferry host tag`); what its agent asked for at its last connection is kept
-- beside them so that a mismatch can be shown, never applied.
ALTER TABLE hosts ADD COLUMN announced_tags TEXT;
-- The hosts a project's environments may select, as the administrator set
-- it (k=v,...): every environment selector must include these terms. NULL
-- lets the project's environments select any host.
ALTER TABLE projects ADD COLUMN host_scope TEXT;
-- Which content each project has proven it holds: recorded when its bytes
-- were uploaded to the project (or made by its build) and verified. Existence
-- checks and release registration look only here, so that nobody learns
-- whether content exists in another project, or uses it by its digest.
CREATE TABLE project_blobs (
    project_id INTEGER NOT NULL REFERENCES projects(id),
    digest TEXT NOT NULL,
    PRIMARY KEY (project_id, digest)
) WITHOUT ROWID;
-- Failed sign-ins counted per user and the address they came from: a lock
-- stops guessing from that address only, so nobody elsewhere can keep an
-- account (the administrator's) locked. users.failed_logins and
-- users.locked_until are no longer used.
CREATE TABLE sign_in_failures (
    user_id INTEGER NOT NULL REFERENCES users(id),
    address TEXT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER,
    PRIMARY KEY (user_id, address)
) WITHOUT ROWID;
-- Join tokens limited to certain tags (`ferry join-token create --tags`): a
-- host enrolling with one gets only tags among these. The server's own join
-- token (join.token) stays unlimited.
CREATE TABLE join_tokens (
    id INTEGER PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    tags TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    revoked_at INTEGER
);
