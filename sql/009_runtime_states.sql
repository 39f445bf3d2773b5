-- What each supervisor process's tenant slots are doing (starting, active, backoff, ...), published
-- by the process every few seconds (supervisor/publish.py) so that the CLI and the alert sender see
-- the runtime from any shell, not only from inside the process. One row per tenant and process start;
-- a row is current only while its process's `instances` heartbeat is fresh.
CREATE TABLE tenant_runtime_states (
    tenant_id      bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    instance       text NOT NULL,
    state          text NOT NULL CHECK (state IN
                       ('starting', 'active', 'standby', 'backoff', 'token_invalid', 'quarantined', 'stopped')),
    -- When this process first reported the state (database clock, to the publishing interval).
    since          timestamptz NOT NULL DEFAULT now(),
    -- When the tenant last went from a healthy state into trouble (backoff, quarantine, a rejected
    -- token) on this process; kept through restarts ('starting'), cleared by standby or active. A
    -- runtime that restarts every few seconds changes `since` on each restart, this stays.
    troubled_since timestamptz,
    last_error     text CHECK (length(last_error) <= 500),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, instance)
);
CREATE INDEX tenant_runtime_states_instance ON tenant_runtime_states (instance);
