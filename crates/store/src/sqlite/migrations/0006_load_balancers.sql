-- Load balancers in front of environments (R14). The load-balancer hosts are
-- ordinary hosts chosen by `selector`; their agents drive the balancer.

-- Where load balancers reach a host: its agent's --address, or the address
-- the server saw it connect from. NULL until it connects once.
ALTER TABLE hosts ADD COLUMN address TEXT;

-- One per environment at most. `options` is a JSON object of the driver's
-- options (upstream, file, reload / socket, haproxy-backend / drain, ready).
CREATE TABLE load_balancers (
    env_id     INTEGER PRIMARY KEY REFERENCES environments(id),
    driver     TEXT NOT NULL,
    selector   TEXT NOT NULL,
    backend    TEXT NOT NULL,
    options    TEXT NOT NULL,
    updated_by TEXT NOT NULL,
    updated_at INTEGER NOT NULL
);

-- Goes up with every change of an environment's load balancer or drained
-- hosts. Kept when the load balancer is removed, so that a generation never
-- comes back and a late report of an old one never counts for a new one.
CREATE TABLE lb_generations (
    env_id     INTEGER PRIMARY KEY REFERENCES environments(id),
    generation INTEGER NOT NULL
);

-- The hosts of an environment that are out of its load balancer.
CREATE TABLE lb_drained (
    env_id     INTEGER NOT NULL REFERENCES environments(id),
    host_id    INTEGER NOT NULL REFERENCES hosts(id),
    drained_at INTEGER NOT NULL,
    PRIMARY KEY (env_id, host_id)
);

-- What each load-balancer host last reported having applied.
CREATE TABLE lb_applied (
    env_id     INTEGER NOT NULL REFERENCES environments(id),
    host_id    INTEGER NOT NULL REFERENCES hosts(id),
    generation INTEGER NOT NULL,
    error      TEXT,
    applied_at INTEGER NOT NULL,
    PRIMARY KEY (env_id, host_id)
);
