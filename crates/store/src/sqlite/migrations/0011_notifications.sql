-- Notifications (R28): per-project rules sending events to webhooks, and an
-- outbox of every notification with each attempt to deliver it, so that a
-- restarted server goes on delivering and the history stays visible.

CREATE TABLE notification_rules (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id  INTEGER NOT NULL REFERENCES projects(id),
    -- JSON list of event names (deploy.finished, deploy.failed, build.finished).
    events      TEXT NOT NULL,
    webhook_url TEXT NOT NULL,
    -- Signs each body; sealed by the server like every secret. NULL: unsigned.
    secret      TEXT,
    created_by  TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

-- No foreign key to the rule: removing a rule keeps what it delivered.
CREATE TABLE notifications (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    project_id      INTEGER NOT NULL REFERENCES projects(id),
    rule_id         INTEGER NOT NULL,
    webhook_url     TEXT NOT NULL,
    event           TEXT NOT NULL,
    payload         TEXT NOT NULL,
    -- pending, delivered, failed (given up)
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at INTEGER,
    created_at      INTEGER NOT NULL
);
CREATE INDEX notifications_due ON notifications (status, next_attempt_at);
CREATE INDEX notifications_by_project ON notifications (project_id, id);

CREATE TABLE notification_attempts (
    notification_id INTEGER NOT NULL REFERENCES notifications(id),
    attempt         INTEGER NOT NULL,
    at              INTEGER NOT NULL,
    status_code     INTEGER,
    error           TEXT,
    PRIMARY KEY (notification_id, attempt)
);
