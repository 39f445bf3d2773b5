-- Tenant registry. Secrets are AES-GCM ciphertexts bound to (tenant id, column); see shared/crypto.py.
CREATE SEQUENCE tenant_lock_key_seq AS integer START WITH 1000;

CREATE TABLE tenants (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    slug             text NOT NULL UNIQUE CHECK (slug ~ '^[a-z0-9-]{3,32}$'),
    display_name     text NOT NULL CHECK (length(display_name) BETWEEN 1 AND 128),
    status           text NOT NULL DEFAULT 'enabled' CHECK (status IN ('enabled', 'disabled', 'token_invalid')),
    bot_id           bigint NOT NULL UNIQUE,
    bot_token_enc    text NOT NULL,
    kie_api_key_enc  text,
    kie_webhook_key_enc text,
    webhook_secret_enc  text NOT NULL,
    callback_secret_enc text NOT NULL,
    admin_ids        bigint[] NOT NULL DEFAULT '{}',
    lock_key         integer NOT NULL UNIQUE DEFAULT nextval('tenant_lock_key_seq'),
    markup           numeric(8, 3) NOT NULL DEFAULT 2.0 CHECK (markup > 0),
    default_language text NOT NULL DEFAULT 'ru' CHECK (default_language IN ('ru', 'en')),
    bot_mode         text CHECK (bot_mode IN ('webhook', 'polling')),
    welcome_bonus    bigint NOT NULL DEFAULT 0 CHECK (welcome_bonus >= 0),
    referral_bonus   bigint NOT NULL DEFAULT 0 CHECK (referral_bonus >= 0),
    disabled_models  text[] NOT NULL DEFAULT '{}',
    config_version   integer NOT NULL DEFAULT 1,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now()
);
ALTER SEQUENCE tenant_lock_key_seq OWNED BY tenants.lock_key;

-- Every change reaches running supervisors; they LISTEN on this channel and reload the one tenant.
CREATE FUNCTION notify_tenant_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('tenant_changed', json_build_object(
        'op', TG_OP, 'id', COALESCE(NEW.id, OLD.id), 'slug', COALESCE(NEW.slug, OLD.slug))::text);
    RETURN NULL;
END $$;

CREATE TRIGGER tenants_notify AFTER INSERT OR UPDATE OR DELETE ON tenants
    FOR EACH ROW EXECUTE FUNCTION notify_tenant_change();
