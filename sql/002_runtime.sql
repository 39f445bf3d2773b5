-- Runtime state shared by every supervisor process: update inbox, FSM, users, lock holders, instances.

-- Each Telegram update is accepted once per tenant; redeliveries and the other replica find the row.
CREATE TABLE updates_inbox (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    update_id   bigint NOT NULL,
    chat_id     bigint,
    payload     jsonb NOT NULL,
    status      text NOT NULL DEFAULT 'processing' CHECK (status IN ('processing', 'done', 'failed')),
    claimed_by  text NOT NULL,
    claimed_at  timestamptz NOT NULL DEFAULT now(),
    attempts    integer NOT NULL DEFAULT 1,
    received_at timestamptz NOT NULL DEFAULT now(),
    done_at     timestamptz,
    PRIMARY KEY (tenant_id, update_id)
);
CREATE INDEX updates_inbox_processing ON updates_inbox (tenant_id, claimed_at) WHERE status = 'processing';
CREATE INDEX updates_inbox_received ON updates_inbox (received_at);

CREATE TABLE fsm_states (
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    chat_id     bigint NOT NULL,
    user_id     bigint NOT NULL,
    thread_id   bigint NOT NULL DEFAULT 0,
    business_connection_id text NOT NULL DEFAULT '',
    destiny     text NOT NULL DEFAULT 'default',
    state       text,
    data        jsonb NOT NULL DEFAULT '{}',
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, chat_id, user_id, thread_id, business_connection_id, destiny)
);

CREATE TABLE bot_users (
    tenant_id     bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id       bigint NOT NULL,
    language      text NOT NULL CHECK (language IN ('ru', 'en')),
    first_name    text,
    username      text,
    referral_code text NOT NULL,
    referred_by   bigint,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, user_id),
    UNIQUE (tenant_id, referral_code)
);

CREATE TABLE instances (
    name         text PRIMARY KEY,
    host         text NOT NULL,
    pid          integer NOT NULL,
    version      text NOT NULL,
    started_at   timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);

-- Who holds each tenant's advisory lock, for operators; the lock itself is the truth.
CREATE TABLE lock_holders (
    tenant_id    bigint PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    instance     text NOT NULL,
    since        timestamptz NOT NULL DEFAULT now(),
    heartbeat_at timestamptz NOT NULL DEFAULT now()
);
