-- What operators did from the CLI (and, later, through the platform bot): who, what, when, and the
-- tenant's view before and after (secrets masked, as `tenants show` prints them). A table of its own
-- beside `audit_log` (tenant admins' bans, promo codes, broadcasts): it has no tenant foreign key, so
-- the record of a removed tenant, its removal included, stays. Append-only.
CREATE TABLE operator_audit (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at  timestamptz NOT NULL DEFAULT now(),
    actor       text NOT NULL CHECK (actor ~ '^operator:[^[:space:]]{1,64}$'),
    action      text NOT NULL CHECK (action ~ '^[a-z_]{1,40}$'),
    tenant_id   bigint,
    tenant_slug text,
    before      jsonb,
    after       jsonb
);
CREATE INDEX operator_audit_created ON operator_audit (created_at);
CREATE INDEX operator_audit_tenant ON operator_audit (tenant_slug, created_at);

CREATE FUNCTION operator_audit_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'operator_audit is append-only: % rejected', TG_OP;
END $$;

CREATE TRIGGER operator_audit_append_only BEFORE UPDATE OR DELETE ON operator_audit
    FOR EACH ROW EXECUTE FUNCTION operator_audit_append_only();

-- `python -m supervisor audit` also lists tenant admins' money actions from the ledger (top-ups, deducts,
-- Stars refunds carry the admin's id): found by time without reading every generation's entries.
CREATE INDEX ledger_entries_admin_money ON ledger_entries (created_at)
    WHERE kind IN ('admin_credit', 'admin_debit', 'refund', 'refund_reverted');
