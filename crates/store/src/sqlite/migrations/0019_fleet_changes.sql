-- The fleet can change: offline policies, retired hosts, host variables by
-- host name.

-- What an offline target means (ferry_domain::offline::OfflinePolicy):
-- environments choose (skip by default); each deployment records the one it
-- ran under. Deployments from before waited for offline hosts.
ALTER TABLE environments ADD COLUMN offline_policy TEXT NOT NULL DEFAULT 'skip';
ALTER TABLE deployments ADD COLUMN offline_policy TEXT NOT NULL DEFAULT 'wait';

-- `ferry host remove`: the row stays for the history that names it; its name
-- becomes NAME~ID (never a valid host name) so that a new host can enrol
-- under NAME, and its credential is gone.
ALTER TABLE hosts ADD COLUMN retired_at INTEGER;

-- Host variables are kept under the host's name, so that a host can be given
-- its configuration before it enrols, and keeps it across a re-enrolment.
-- host_id is no longer used.
ALTER TABLE vars ADD COLUMN host_name TEXT;
UPDATE vars SET host_name = (SELECT name FROM hosts WHERE hosts.id = vars.host_id) WHERE host_id IS NOT NULL;
UPDATE vars SET host_id = NULL;
DROP INDEX vars_one_per_scope;
CREATE UNIQUE INDEX vars_one_per_scope ON vars (project_id, IFNULL(env_id, 0), IFNULL(host_name, ''), key);
DROP INDEX vars_by_host;
CREATE INDEX vars_by_host_name ON vars (host_name);

-- Deleted projects and environments stay, for the deployments, builds and
-- audit entries that name them; their names stay taken.
ALTER TABLE projects ADD COLUMN deleted_at INTEGER;
ALTER TABLE environments ADD COLUMN deleted_at INTEGER;
