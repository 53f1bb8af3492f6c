-- How a project's service fares on a host after its deploy (R21), as the
-- host last reported it. NULL: no report yet, or the release has no service.
ALTER TABLE host_actual ADD COLUMN service_failing INTEGER;
ALTER TABLE host_actual ADD COLUMN service_reason TEXT;
-- JSON array of its last stderr lines.
ALTER TABLE host_actual ADD COLUMN service_stderr TEXT;
-- When it started failing (or recovered).
ALTER TABLE host_actual ADD COLUMN service_since INTEGER;
