-- The audit trail is keyed (R27): each new row's hash is an HMAC-SHA256 under
-- the server's audit key, kept outside the database, so that someone who can
-- write this file cannot recompute a chain that verifies. Rows written before
-- keep their plain SHA-256 hash and say so; which rows must be keyed is
-- recorded outside the database too (the server's audit checkpoint), so
-- relabelling a row changes nothing.
ALTER TABLE audit_log ADD COLUMN scheme TEXT NOT NULL DEFAULT 'sha256';
