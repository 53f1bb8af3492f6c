-- R23: environments in order. A version reaches an environment only after it
-- succeeded on every host of the environment it comes after (`after_env_id`,
-- same project; the server refuses cycles). `self_test`: whether the
-- requester of a release request may pass it as tested herself.
ALTER TABLE environments ADD COLUMN after_env_id INTEGER REFERENCES environments(id);
ALTER TABLE environments ADD COLUMN self_test INTEGER NOT NULL DEFAULT 0;
-- A release request that skips the order (its requester had the production
-- right and its reason says why); its release deploys past the order too.
ALTER TABLE release_requests ADD COLUMN skip_promotion INTEGER NOT NULL DEFAULT 0;
