-- Rollouts (R13): a deployment's plan (hosts in batches), where it stands,
-- and what operators asked of it. Everything the orchestrator decides from
-- lives here, so a restarted server resumes a rollout where it was.

-- The environment's default rollout (JSON of ferry_domain::rollout::RolloutPolicy).
ALTER TABLE environments ADD COLUMN rollout TEXT;

ALTER TABLE deployments ADD COLUMN policy TEXT;
ALTER TABLE deployments ADD COLUMN batch_count INTEGER NOT NULL DEFAULT 1;
-- The batch most recently started; NULL before the first.
ALTER TABLE deployments ADD COLUMN current_batch INTEGER;
ALTER TABLE deployments ADD COLUMN promoted_through INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN paused INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN cancel_requested INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deployments ADD COLUMN emergency INTEGER NOT NULL DEFAULT 0;
-- On success, the release becomes the environment's (hosts joining later adopt it).
ALTER TABLE deployments ADD COLUMN whole_env INTEGER NOT NULL DEFAULT 0;
-- Why it waits now (for people), and why it ended.
ALTER TABLE deployments ADD COLUMN hold TEXT;
ALTER TABLE deployments ADD COLUMN reason TEXT;

ALTER TABLE deployment_hosts ADD COLUMN batch INTEGER NOT NULL DEFAULT 0;
-- What the host was meant to run before its batch started: where a rollback puts it.
ALTER TABLE deployment_hosts ADD COLUMN previous_release_id INTEGER REFERENCES releases(id);

-- Deployments from before rollouts had every host started at creation.
UPDATE deployments SET current_batch = 0 WHERE current_batch IS NULL;

-- Each transition of a rollout, with its time.
CREATE TABLE deployment_events (
    deployment_id INTEGER NOT NULL REFERENCES deployments(id),
    seq           INTEGER NOT NULL,
    at            INTEGER NOT NULL,
    what          TEXT NOT NULL,
    PRIMARY KEY (deployment_id, seq)
);
