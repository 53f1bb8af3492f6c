-- Deployment logs: per deployment and host, the output of deploy hooks and
-- the agent's own steps, as the agents send them.

CREATE TABLE deployment_logs (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id),
    -- Counts up through the whole deployment, across its hosts.
    seq           INTEGER NOT NULL,
    host_id       INTEGER NOT NULL REFERENCES hosts(id),
    at            INTEGER NOT NULL,
    stream        TEXT NOT NULL,
    line          TEXT NOT NULL,
    -- Set on one row per deployment host at most: the marker that stands for
    -- the lines dropped once the host's log was full, and how many they are.
    dropped       INTEGER,
    PRIMARY KEY (deployment_id, seq)
);
-- Reading one host's lines, and counting them against its budget.
CREATE INDEX deployment_logs_by_host ON deployment_logs (deployment_id, host_id, seq);
