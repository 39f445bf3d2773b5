-- Shop analytics (tenant_runtime/analytics.py): what a generation cost at KIE, and covering indexes that
-- let each statistics statement read only one tenant's index entries of the period, never the table
-- (bench: stats at a million ledger rows).
ALTER TABLE jobs ADD COLUMN kie_credits numeric(12, 4) CHECK (kie_credits >= 0);  -- the registry's price, as quoted
CREATE INDEX ledger_entries_tenant_money ON ledger_entries (tenant_id, kind, created_at) INCLUDE (amount, user_id)
    WHERE kind IN ('topup', 'commit');
CREATE INDEX jobs_tenant_stats ON jobs (tenant_id, created_at) INCLUDE (model, status, price, kie_credits);
CREATE INDEX bot_users_tenant_created ON bot_users (tenant_id, created_at);
