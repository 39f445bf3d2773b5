-- Promo codes: money in the tenant's currency or N free generations, at most `max_uses` redemptions,
-- once per user, until `expires_at`. Created by tenant admins (/admin) or the operator (`promo add`).
CREATE TABLE promo_codes (
    tenant_id        bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    code             text NOT NULL CHECK (code ~ '^[A-Z0-9_-]{3,32}$'),
    amount_minor     bigint CHECK (amount_minor > 0),
    free_generations integer CHECK (free_generations > 0),
    max_uses         integer NOT NULL CHECK (max_uses > 0),
    uses             integer NOT NULL DEFAULT 0,
    expires_at       timestamptz,
    disabled_at      timestamptz,
    created_by       text NOT NULL CHECK (created_by ~ '^((user|admin):[0-9]+|operator:[^[:space:]]{1,64})$'),
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, code),
    CHECK ((amount_minor IS NULL) <> (free_generations IS NULL)),
    -- Never beyond max uses, whatever the code above does.
    CHECK (uses BETWEEN 0 AND max_uses)
);

-- One row per user and code: the primary key is the "once per user".
CREATE TABLE promo_redemptions (
    tenant_id        bigint NOT NULL,
    code             text NOT NULL,
    user_id          bigint NOT NULL,
    amount_minor     bigint,
    free_generations integer,
    redeemed_at      timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, code, user_id),
    FOREIGN KEY (tenant_id, code) REFERENCES promo_codes (tenant_id, code) ON DELETE CASCADE
);
CREATE INDEX promo_redemptions_user ON promo_redemptions (tenant_id, user_id);

-- A promo's money is a ledger entry of its own kind, keyed by code and user (available +).
ALTER TABLE ledger_entries DROP CONSTRAINT ledger_entries_kind_check;
ALTER TABLE ledger_entries ADD CONSTRAINT ledger_entries_kind_check CHECK (kind IN (
    'topup', 'admin_credit', 'bonus_welcome', 'bonus_referral', 'refund_reverted', 'promo',
    'admin_debit', 'refund', 'hold', 'commit', 'release', 'expiry'));

ALTER TABLE audit_log DROP CONSTRAINT audit_log_action_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_action_check
    CHECK (action IN ('ban', 'unban', 'promo_create', 'promo_disable'));
