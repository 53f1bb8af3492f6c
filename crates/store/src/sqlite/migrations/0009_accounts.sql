-- Accounts and access (R26): local users with passwords, the production
-- right, disabled users, project members with a role, production
-- environments.

-- argon2id PHC string; NULL for a user who signs in with tokens only (the
-- built-in administrator).
ALTER TABLE users ADD COLUMN password_hash TEXT;
ALTER TABLE users ADD COLUMN production INTEGER NOT NULL DEFAULT 0;
-- A disabled user's tokens stop working at once: every request reads this.
ALTER TABLE users ADD COLUMN disabled INTEGER NOT NULL DEFAULT 0;

ALTER TABLE environments ADD COLUMN production INTEGER NOT NULL DEFAULT 0;

CREATE TABLE project_members (
    project_id INTEGER NOT NULL REFERENCES projects(id),
    user_id    INTEGER NOT NULL REFERENCES users(id),
    -- owner, developer or viewer
    role       TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    PRIMARY KEY (project_id, user_id)
);
CREATE INDEX project_members_by_user ON project_members (user_id);
