-- A failed generation's message to the user is told durably, like a result: until `told_at` is set the
-- tenant's lock holder tells it again (the first try may have met Telegram out of reach). Failures
-- finished before this migration were told at the time.
ALTER TABLE jobs ADD COLUMN told_at timestamptz;
UPDATE jobs SET told_at = coalesce(finished_at, now()) WHERE status = 'failed';
CREATE INDEX jobs_untold_failures ON jobs (next_poll_at) WHERE status = 'failed' AND told_at IS NULL;
