-- Bans by a tenant's admins: the user keeps their balance, gets one short message a day and nothing
-- else. Every ban and unban goes to the audit log with the admin's id.
ALTER TABLE bot_users
    ADD COLUMN banned_at   timestamptz,
    ADD COLUMN ban_reason  text CHECK (ban_reason IS NULL OR length(ban_reason) BETWEEN 1 AND 500),
    ADD COLUMN banned_by   bigint,
    -- The day (in the tenant's zone) the banned user was last told they are restricted.
    ADD COLUMN ban_told_on date,
    ADD CONSTRAINT bot_users_ban_complete CHECK ((banned_at IS NULL) = (ban_reason IS NULL));

-- Admins look users up by @username too.
CREATE INDEX bot_users_username ON bot_users (tenant_id, lower(username)) WHERE username IS NOT NULL;

-- What a tenant's admins (and the operator) did, append-only.
CREATE TABLE audit_log (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id  bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    actor      text NOT NULL CHECK (actor ~ '^(system|(user|admin):[0-9]+|operator:[^[:space:]]{1,64})$'),
    action     text NOT NULL CHECK (action IN ('ban', 'unban')),
    subject    text NOT NULL,
    detail     text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX audit_log_tenant ON audit_log (tenant_id, id DESC);
