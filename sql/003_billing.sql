-- Money: per-tenant balances in minor units (kopecks), an append-only ledger, two-phase holds and
-- Telegram Stars payments. Every table is keyed by tenant_id first; tenants never share rows.

CREATE TABLE accounts (
    tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id    bigint NOT NULL,
    available  bigint NOT NULL DEFAULT 0 CHECK (available >= 0),
    held       bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE holds (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       bigint NOT NULL,
    user_id         bigint NOT NULL,
    amount          bigint NOT NULL CHECK (amount > 0),
    idempotency_key text NOT NULL,
    status          text NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'committed', 'released', 'expired')),
    expires_at      timestamptz NOT NULL,
    correlation_id  text,
    created_at      timestamptz NOT NULL DEFAULT now(),
    resolved_at     timestamptz,
    FOREIGN KEY (tenant_id, user_id) REFERENCES accounts (tenant_id, user_id) ON DELETE CASCADE,
    CHECK ((status = 'pending') = (resolved_at IS NULL)),
    UNIQUE (tenant_id, idempotency_key),
    UNIQUE (tenant_id, id)
);
CREATE INDEX holds_pending_expiry ON holds (expires_at) WHERE status = 'pending';

-- `amount` is always positive; the direction of each kind is fixed here, once, in the generated
-- deltas, so the reconciliation is a plain sum and code can never record a movement backwards.
CREATE TABLE ledger_entries (
    id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id       bigint NOT NULL,
    user_id         bigint NOT NULL,
    kind            text NOT NULL CHECK (kind IN (
                        'topup', 'admin_credit', 'bonus_welcome', 'bonus_referral', 'refund_reverted',
                        'admin_debit', 'refund', 'hold', 'commit', 'release', 'expiry')),
    amount          bigint NOT NULL CHECK (amount > 0),
    available_delta bigint GENERATED ALWAYS AS (CASE
                        WHEN kind IN ('admin_debit', 'refund', 'hold') THEN -amount
                        WHEN kind = 'commit' THEN 0
                        ELSE amount END) STORED,
    held_delta      bigint GENERATED ALWAYS AS (CASE
                        WHEN kind = 'hold' THEN amount
                        WHEN kind IN ('commit', 'release', 'expiry') THEN -amount
                        ELSE 0 END) STORED,
    hold_id         bigint,
    unique_key      text,
    reference       text,
    correlation_id  text,
    actor           text NOT NULL CHECK (actor ~ '^(system|(user|admin):[0-9]+|operator:[^[:space:]]{1,64})$'),
    reason          text,
    available_after bigint NOT NULL CHECK (available_after >= 0),
    held_after      bigint NOT NULL CHECK (held_after >= 0),
    created_at      timestamptz NOT NULL DEFAULT now(),
    FOREIGN KEY (tenant_id, user_id) REFERENCES accounts (tenant_id, user_id) ON DELETE CASCADE,
    FOREIGN KEY (tenant_id, hold_id) REFERENCES holds (tenant_id, id) ON DELETE CASCADE,
    -- Hold movements name their hold; everything else is deduplicated by its own key.
    CHECK ((hold_id IS NOT NULL) = (kind IN ('hold', 'commit', 'release', 'expiry'))),
    CHECK ((unique_key IS NOT NULL) = (hold_id IS NULL)),
    CHECK (kind NOT IN ('admin_credit', 'admin_debit') OR length(btrim(coalesce(reason, ''))) > 0),
    UNIQUE (tenant_id, kind, unique_key)
);
CREATE INDEX ledger_entries_account ON ledger_entries (tenant_id, user_id, id DESC);
-- A hold moves money in once and out once, whatever the code above does.
CREATE UNIQUE INDEX ledger_entries_hold_placed ON ledger_entries (tenant_id, hold_id) WHERE kind = 'hold';
CREATE UNIQUE INDEX ledger_entries_hold_resolved ON ledger_entries (tenant_id, hold_id)
    WHERE kind IN ('commit', 'release', 'expiry');

-- History is never rewritten. The one way out is removing the tenant: its cascade arrives here after
-- the tenant row is gone.
CREATE FUNCTION ledger_entries_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND NOT EXISTS (SELECT 1 FROM tenants WHERE id = OLD.tenant_id) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'ledger_entries is append-only: % rejected', TG_OP;
END $$;

CREATE TRIGGER ledger_entries_append_only BEFORE UPDATE OR DELETE ON ledger_entries
    FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only();

CREATE TABLE star_payments (
    tenant_id       bigint NOT NULL,
    charge_id       text NOT NULL,
    user_id         bigint NOT NULL,
    stars           integer NOT NULL CHECK (stars > 0),
    amount_minor    bigint NOT NULL CHECK (amount_minor > 0),
    payload         text NOT NULL,
    status          text NOT NULL DEFAULT 'paid' CHECK (status IN ('paid', 'refunding', 'refunded')),
    -- Numbers each refund try, so its debit and a possible reversal get their own ledger keys.
    refund_attempts integer NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    refunded_at     timestamptz,
    refunded_by     bigint,
    FOREIGN KEY (tenant_id, user_id) REFERENCES accounts (tenant_id, user_id) ON DELETE CASCADE,
    PRIMARY KEY (tenant_id, charge_id)
);
