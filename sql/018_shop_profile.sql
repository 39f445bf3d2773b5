-- A shop's own words (tenant_runtime/shop_profile.py): welcome and help texts and the bot's Telegram
-- descriptions per language, and a support contact. Checked when set; absent means the product default.
ALTER TABLE tenants ADD COLUMN support_url text CHECK (support_url ~ '^https://' AND length(support_url) <= 256);
-- {"ru": {"welcome": "...", "help": "...", "description": "...", "short_description": "..."}, "en": {...}}
ALTER TABLE tenants ADD COLUMN texts jsonb NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(texts) = 'object');

-- What the bot's Telegram profile (commands per language and admin chat, descriptions) was last set to,
-- by whichever process held the tenant: a restart or a new holder with the same profile calls nothing,
-- and a change is applied once. `admin_ids`: the chats that got the admin command list, so an admin
-- who is removed loses it.
CREATE TABLE bot_profiles (
    tenant_id   bigint PRIMARY KEY REFERENCES tenants (id) ON DELETE CASCADE,
    bot_id      bigint NOT NULL,
    fingerprint text NOT NULL,
    admin_ids   bigint[] NOT NULL DEFAULT '{}',
    synced_at   timestamptz NOT NULL DEFAULT now()
);
