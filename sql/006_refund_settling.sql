-- When a Stars refund was started: one whose Telegram answer never came is asked again after a while.
ALTER TABLE star_payments ADD COLUMN refund_started_at timestamptz;
UPDATE star_payments SET refund_started_at = now() WHERE status = 'refunding';
CREATE INDEX star_payments_refunding ON star_payments (refund_started_at) WHERE status = 'refunding';
