-- Notification channels and recipients (R28). A rule delivers through one
-- channel: the signed JSON webhook (every rule before this), e-mail, or a
-- chat's incoming webhook (slack, dingtalk, feishu, wecom). E-mail rules name
-- their recipients; each notification records whom it was addressed to,
-- resolved when it was queued, and who was meant but skipped.

ALTER TABLE notification_rules ADD COLUMN kind TEXT NOT NULL DEFAULT 'webhook';
-- JSON list: members, approvers, starter or e-mail addresses. Empty for the
-- channels that post to a URL (webhook_url holds it; '' for e-mail).
ALTER TABLE notification_rules ADD COLUMN recipients TEXT NOT NULL DEFAULT '[]';

ALTER TABLE notifications ADD COLUMN kind TEXT NOT NULL DEFAULT 'webhook';
-- JSON list of the e-mail addresses written to.
ALTER TABLE notifications ADD COLUMN recipients TEXT NOT NULL DEFAULT '[]';
-- JSON list of the users meant but not written to, each with why.
ALTER TABLE notifications ADD COLUMN skipped TEXT NOT NULL DEFAULT '[]';

-- Where a user's notifications go; NULL: nowhere.
ALTER TABLE users ADD COLUMN email TEXT;
