-- Generation jobs: created with their hold in one transaction, finished exactly once.
CREATE TABLE jobs (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    tenant_id           bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    user_id             bigint NOT NULL,
    chat_id             bigint NOT NULL,
    model               text NOT NULL,
    params              jsonb NOT NULL,
    kie_input           jsonb NOT NULL,
    price               bigint NOT NULL CHECK (price >= 0),
    hold_id             bigint,
    idempotency_key     text NOT NULL,
    correlation_id      text NOT NULL,
    language            text NOT NULL DEFAULT 'ru',
    status              text NOT NULL DEFAULT 'created'
                        CHECK (status IN ('created', 'submitted', 'succeeded', 'delivered', 'failed')),
    task_id             text,
    kie_state           text,
    result_urls         jsonb,
    result_text         text,
    fail_reason         text,
    fail_detail         text,
    progress_message_id bigint,
    poll_count          integer NOT NULL DEFAULT 0,
    next_poll_at        timestamptz NOT NULL DEFAULT now(),
    deadline_at         timestamptz NOT NULL,
    created_at          timestamptz NOT NULL DEFAULT now(),
    submitted_at        timestamptz,
    finished_at         timestamptz,
    delivered_at        timestamptz,
    UNIQUE (tenant_id, idempotency_key)
);
CREATE UNIQUE INDEX jobs_task ON jobs (task_id) WHERE task_id IS NOT NULL;
CREATE INDEX jobs_open ON jobs (next_poll_at) WHERE status IN ('created', 'submitted', 'succeeded');
CREATE INDEX jobs_user ON jobs (tenant_id, user_id, created_at DESC);

-- A verified callback whose job has no task id yet (it raced createTask's reply); matched later.
CREATE TABLE kie_orphan_callbacks (
    task_id     text PRIMARY KEY,
    tenant_id   bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    body        jsonb NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now()
);

-- One alert per tenant and kind per period (e.g. the tenant's KIE key is out of credits).
CREATE TABLE tenant_alerts (
    tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    kind      text NOT NULL,
    sent_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind)
);
