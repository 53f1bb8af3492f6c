-- Rollbacks per host (R9, R11): each host goes back to the release it ran
-- before, so a deployment's targets can each go to a release of their own.

-- The release this target goes to; NULL (older rows): the deployment's.
ALTER TABLE deployment_hosts ADD COLUMN release_id INTEGER REFERENCES releases(id);
-- What the host ran when the deployment was made, for "a: v2 -> v1".
ALTER TABLE deployment_hosts ADD COLUMN from_release_id INTEGER REFERENCES releases(id);

-- Each release a host ran successfully (activated, reported idle), in order:
-- a row is added when the host reports idle on a release other than its
-- newest row's. A rollback's target per host comes from here, never from a
-- release that was only in flight.
CREATE TABLE host_releases_ran (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    host_id    INTEGER NOT NULL REFERENCES hosts(id),
    project_id INTEGER NOT NULL REFERENCES projects(id),
    release_id INTEGER NOT NULL REFERENCES releases(id),
    ran_at     INTEGER NOT NULL
);
CREATE INDEX host_releases_ran_by_host ON host_releases_ran (project_id, host_id, seq);

-- What is known from before: the hosts' successful deployments in order,
-- then what each host last reported running idle.
INSERT INTO host_releases_ran (host_id, project_id, release_id, ran_at)
    SELECT dh.host_id, d.project_id, d.release_id, COALESCE(dh.finished_at, d.created_at)
    FROM deployment_hosts dh JOIN deployments d ON d.id = dh.deployment_id
    WHERE dh.state = 'succeeded' ORDER BY COALESCE(dh.finished_at, d.created_at), d.id;
INSERT INTO host_releases_ran (host_id, project_id, release_id, ran_at)
    SELECT ha.host_id, ha.project_id, ha.release_id, ha.updated_at FROM host_actual ha
    JOIN releases r ON r.id = ha.release_id AND r.project_id = ha.project_id
    WHERE ha.activity = 'idle';
