-- Redelivery attempts of a finished job (its delivering process died), counted apart from polls.
ALTER TABLE jobs ADD COLUMN delivery_attempts integer NOT NULL DEFAULT 0;
-- The operator status page counts today's jobs per tenant.
CREATE INDEX jobs_tenant_created ON jobs (tenant_id, created_at);
