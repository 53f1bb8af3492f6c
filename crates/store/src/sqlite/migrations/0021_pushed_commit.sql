-- The commit a push webhook delivered: the build checks out exactly this
-- commit, even if its branch has moved on by the time the build runs.
ALTER TABLE builds ADD COLUMN pushed_commit TEXT;
