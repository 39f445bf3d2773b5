-- Operator alerts (supervisor/alerts/). Evaluated every few seconds from what is true now; sent by ONE
-- process at a time, so the state of every incident lives here: a new sender neither resends nor forgets.

-- Each process's own health, published by its alert loop (every process runs it): what the sender
-- needs to see about replicas it is not.
CREATE TABLE instance_health (
    instance          text PRIMARY KEY,   -- instances.name
    tenants           integer NOT NULL,   -- slots it runs
    able              integer NOT NULL,   -- of which standby or active
    cannot_serve      text,               -- why it serves nothing or less than it should, NULL when fine
    not_serving_since timestamptz,        -- first report of cannot_serve without a fine report since
    locks_unavailable integer NOT NULL DEFAULT 0,
    loops_failing     text[] NOT NULL DEFAULT '{}',
    updated_at        timestamptz NOT NULL DEFAULT now()
);

-- The lease of the alert sender: renewed on every tick by its holder, taken over once it is stale.
-- Only touched under the platform advisory lock (shared.db LOCK_NS_PLATFORM, PLATFORM_LOCK_ALERTS).
CREATE TABLE alert_sender (
    id         boolean PRIMARY KEY DEFAULT true CHECK (id),
    identity   text NOT NULL,
    renewed_at timestamptz NOT NULL DEFAULT now()
);

-- One row per incident from the moment it is seen until its recovery has been told (then deleted).
-- `alerted_to` / `recovered_to` name the channels that have the alert / the recovery (telegram:<chat>,
-- webhook), so a channel that failed is retried alone and a channel that has it never gets it twice.
CREATE TABLE alert_incidents (
    key          text PRIMARY KEY,        -- <kind>:<subject>
    kind         text NOT NULL,
    subject      text NOT NULL,
    detail       text NOT NULL DEFAULT '' CHECK (length(detail) <= 500),
    opened_at    timestamptz NOT NULL DEFAULT now(),
    resolved_at  timestamptz,
    alerted_to   text[] NOT NULL DEFAULT '{}',
    recovered_to text[] NOT NULL DEFAULT '{}'
);

-- Every message that went out, for the rate limit (messages per minute, whoever the sender) and for
-- operators looking back.
CREATE TABLE alert_deliveries (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    sent_at  timestamptz NOT NULL DEFAULT now(),
    sender   text NOT NULL,
    event    text NOT NULL CHECK (event IN ('alert', 'recovery', 'digest')),
    keys     text[] NOT NULL,
    channels text[] NOT NULL,
    body     text NOT NULL
);
CREATE INDEX alert_deliveries_sent ON alert_deliveries (sent_at);
