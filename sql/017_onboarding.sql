-- Shops created by their owners through the platform bot (supervisor/onboarding/).

-- `pending`: created by an owner, waiting for an operator's approval (ONBOARDING=approval); `paused`: the
-- owner stopped the shop from /myshops. Neither is served; only an operator's `disabled` is beyond an
-- owner's reach (an owner resumes only what they paused).
ALTER TABLE tenants DROP CONSTRAINT tenants_status_check;
ALTER TABLE tenants ADD CONSTRAINT tenants_status_check
    CHECK (status IN ('enabled', 'disabled', 'token_invalid', 'pending', 'paused'));

-- The Telegram user who created the shop through the platform bot (NULL for shops the CLI added).
ALTER TABLE tenants ADD COLUMN owner_id bigint CHECK (owner_id > 0);
CREATE INDEX tenants_owner ON tenants (owner_id) WHERE owner_id IS NOT NULL;
-- One shop waiting for approval per owner: a second /newshop is refused while one is pending.
CREATE UNIQUE INDEX tenants_one_pending_per_owner ON tenants (owner_id) WHERE status = 'pending';

-- Owners act too: `owner:<telegram user id>` beside `operator:<name>`.
ALTER TABLE operator_audit DROP CONSTRAINT operator_audit_actor_check;
ALTER TABLE operator_audit ADD CONSTRAINT operator_audit_actor_check
    CHECK (actor ~ '^operator:[^[:space:]]{1,64}$' OR actor ~ '^owner:[0-9]{1,20}$');

-- The platform bot's conversations (aiogram FSM), one per user. Secrets typed into a draft (the bot
-- token, the KIE key) are stored encrypted, bound to the user; a draft untouched for a day is dropped,
-- so a flow abandoned half-way leaves neither a tenant nor a secret behind for long.
CREATE TABLE onboarding_drafts (
    user_id    bigint PRIMARY KEY,
    state      text,
    data       jsonb NOT NULL DEFAULT '{}',
    updated_at timestamptz NOT NULL DEFAULT now()
);

-- The platform bot is polled by one process at a time: the holder of this lease, renewed on every poll
-- and taken over once stale. `next_offset` is where the next holder resumes.
CREATE TABLE platform_bot_lease (
    id          boolean PRIMARY KEY DEFAULT true CHECK (id),
    identity    text NOT NULL,
    renewed_at  timestamptz NOT NULL DEFAULT now(),
    bot_id      bigint NOT NULL,  -- the offset is this bot's: another PLATFORM_BOT_TOKEN starts afresh
    next_offset bigint NOT NULL DEFAULT 0
);

-- Each platform bot update is handled once, even when two holders overlap during a takeover.
CREATE TABLE platform_bot_updates (
    bot_id     bigint NOT NULL,
    update_id  bigint NOT NULL,
    handled_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (bot_id, update_id)
);
CREATE INDEX platform_bot_updates_handled ON platform_bot_updates (handled_at);
