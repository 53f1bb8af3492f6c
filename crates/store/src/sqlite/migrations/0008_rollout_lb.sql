-- The hosts a rollout itself took out of the environment's load balancer
-- (JSON array of host ids): it puts back only those, never a host an
-- operator drained by hand.
ALTER TABLE deployments ADD COLUMN lb_drained TEXT NOT NULL DEFAULT '[]';
