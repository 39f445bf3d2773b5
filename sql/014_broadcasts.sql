-- Broadcasts: an admin's message to the shop's users, sent by the tenant's lock holder at most 25 a second,
-- each recipient at most once, resumed where it stopped after a restart, a deploy or a failover.

-- The user blocked the bot (Telegram answered 403): left out of later broadcasts until they write again.
ALTER TABLE bot_users ADD COLUMN blocked_at timestamptz;

CREATE TABLE broadcasts (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id           bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    -- The admin's confirm screen: a second tap on Send finds this broadcast instead of making another.
    draft               text NOT NULL,
    created_by          bigint NOT NULL,
    status              text NOT NULL DEFAULT 'running'
                            CHECK (status IN ('running', 'paused', 'cancelled', 'done')),
    audience            text NOT NULL CHECK (audience IN ('all', 'paid', 'active')),
    kind                text NOT NULL CHECK (kind IN ('text', 'photo', 'video')),
    body                text,
    file_id             text,
    button_text         text,
    button_url          text,
    total               integer NOT NULL CHECK (total > 0),
    language            text NOT NULL CHECK (language IN ('ru', 'en')),
    admin_chat_id       bigint NOT NULL,
    progress_message_id bigint,
    created_at          timestamptz NOT NULL DEFAULT now(),
    finished_at         timestamptz,
    UNIQUE (tenant_id, draft),
    CHECK ((kind = 'text') = (file_id IS NULL)),
    CHECK (kind <> 'text' OR body IS NOT NULL),
    CHECK ((button_text IS NULL) = (button_url IS NULL)),
    CHECK ((status IN ('cancelled', 'done')) = (finished_at IS NOT NULL))
);
-- One broadcast at a time per tenant (running or paused).
CREATE UNIQUE INDEX broadcasts_one_open ON broadcasts (tenant_id) WHERE status IN ('running', 'paused');

-- One row per recipient, taken at creation from the audience. 'sending' is claimed right before the
-- call to Telegram; a claim whose process died cannot tell whether Telegram got it, so it becomes
-- 'unknown' and is never sent again (a duplicate is worse than one missing copy of an advertisement).
CREATE TABLE broadcast_recipients (
    broadcast_id bigint NOT NULL REFERENCES broadcasts (id) ON DELETE CASCADE,
    user_id      bigint NOT NULL,
    status       text NOT NULL DEFAULT 'pending'
                     CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'blocked', 'unknown')),
    attempts     integer NOT NULL DEFAULT 0,
    claimed_by   text,
    claimed_at   timestamptz,
    done_at      timestamptz,
    error        text,
    PRIMARY KEY (broadcast_id, user_id)
);
CREATE INDEX broadcast_recipients_pending ON broadcast_recipients (broadcast_id, user_id) WHERE status = 'pending';
CREATE INDEX broadcast_recipients_sending ON broadcast_recipients (broadcast_id) WHERE status = 'sending';

ALTER TABLE audit_log DROP CONSTRAINT audit_log_action_check;
ALTER TABLE audit_log ADD CONSTRAINT audit_log_action_check CHECK (action IN (
    'ban', 'unban', 'promo_create', 'promo_disable',
    'broadcast_start', 'broadcast_pause', 'broadcast_resume', 'broadcast_cancel'));
