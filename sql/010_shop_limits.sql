-- A tenant's abuse limits, set by the operator (`tenants add|update --free-daily --max-open-jobs
-- --rate-limit --timezone`); every default is the safe one, so existing tenants are protected at once.
ALTER TABLE tenants
    ADD COLUMN free_daily integer NOT NULL DEFAULT 5 CHECK (free_daily BETWEEN 0 AND 1000),
    ADD COLUMN max_open_jobs integer NOT NULL DEFAULT 3 CHECK (max_open_jobs BETWEEN 1 AND 100),
    ADD COLUMN rate_limit_per_minute integer NOT NULL DEFAULT 30 CHECK (rate_limit_per_minute BETWEEN 1 AND 1000),
    -- The free quota resets at midnight here; an IANA name Postgres knows (checked when it is set).
    ADD COLUMN timezone text NOT NULL DEFAULT 'Europe/Moscow' CHECK (timezone ~ '^[A-Za-z0-9_+/-]{1,64}$');

-- Which free allowance a free job used: today's quota ('daily') or a promo's free generations ('bonus').
-- A failed job gives its use back, because the counts below skip failed jobs.
ALTER TABLE jobs ADD COLUMN free_use text CHECK (free_use IN ('daily', 'bonus'));

-- Messages and taps per user in a fixed one-minute window, counted by one UPSERT per update.
CREATE TABLE rate_windows (
    tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    bigint NOT NULL,
    started_at timestamptz NOT NULL DEFAULT now(),
    hits       integer NOT NULL DEFAULT 1,
    PRIMARY KEY (tenant_id, user_id)
);
