-- Switchyard's first schema.
--
-- Every tenant-owned table carries tenant_id, and tenant_id leads its primary key
-- and every unique constraint, so that the tables can be distributed by tenant
-- (Citus) without a schema change. `tenants` itself is the distribution root.

CREATE TABLE tenants (
    id                    uuid PRIMARY KEY,
    name                  text NOT NULL,
    max_concurrent_steps  integer,
    weight                integer NOT NULL DEFAULT 1 CHECK (weight > 0),
    created_at            timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX tenants_name ON tenants (name);

-- API keys are stored as SHA-256 digests; the key itself is shown once. The key
-- text names its tenant, so a lookup is by (tenant_id, digest).
CREATE TABLE api_keys (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    id          uuid NOT NULL,
    digest      bytea NOT NULL,
    prefix      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz,
    PRIMARY KEY (tenant_id, id),
    UNIQUE (tenant_id, digest)
);

-- Immutable versions of workflows, agents and tools: the YAML text as applied and
-- the compiled JSON the engine runs.
CREATE TABLE resource_versions (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    kind        text NOT NULL CHECK (kind IN ('Workflow', 'Agent', 'Tool')),
    name        text NOT NULL,
    version     integer NOT NULL CHECK (version > 0),
    source      text NOT NULL,
    spec        jsonb NOT NULL,
    digest      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, kind, name, version)
);

CREATE TABLE runs (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    id               uuid NOT NULL,
    workflow         text NOT NULL,
    version          integer NOT NULL,
    status           text NOT NULL CHECK (status IN ('queued', 'running', 'waiting', 'succeeded', 'failed', 'cancelled')),
    input            jsonb NOT NULL,
    output           jsonb,
    error            jsonb,
    idempotency_key  text,
    -- Steps not yet in a final state; the run finishes when it reaches zero.
    remaining_steps  integer NOT NULL,
    -- The last event sequence number; bumping it serialises a run's events.
    event_seq        bigint NOT NULL DEFAULT 0,
    deadline         timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    started_at       timestamptz,
    finished_at      timestamptz,
    PRIMARY KEY (tenant_id, id)
);
CREATE UNIQUE INDEX runs_idempotency ON runs (tenant_id, idempotency_key) WHERE idempotency_key IS NOT NULL;
CREATE INDEX runs_by_created ON runs (tenant_id, created_at DESC, id DESC);
CREATE INDEX runs_deadline ON runs (deadline) WHERE deadline IS NOT NULL AND status IN ('queued', 'running', 'waiting');

CREATE TABLE steps (
    tenant_id         uuid NOT NULL,
    run_id            uuid NOT NULL,
    step_id           text NOT NULL,
    -- The step's place in the workflow document, for display order.
    position          integer NOT NULL,
    status            text NOT NULL CHECK (status IN ('pending', 'ready', 'running', 'waiting', 'succeeded', 'failed', 'skipped', 'cancelled')),
    -- `needs` not yet finished; the step becomes ready when it reaches zero.
    pending_needs     integer NOT NULL,
    attempt           integer NOT NULL DEFAULT 0,
    max_attempts      integer NOT NULL DEFAULT 1,
    ready_at          timestamptz,
    lease_owner       uuid,
    lease_expires_at  timestamptz,
    wait_signal       text,
    wait_deadline     timestamptz,
    expert            text,
    output            jsonb,
    error             jsonb,
    started_at        timestamptz,
    finished_at       timestamptz,
    PRIMARY KEY (tenant_id, run_id, step_id),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, id) ON DELETE CASCADE
);
-- The claim path reads only this index: ready steps by the time they may start.
CREATE INDEX steps_ready ON steps (ready_at) WHERE status = 'ready';
CREATE INDEX steps_leases ON steps (lease_expires_at) WHERE status = 'running';
CREATE INDEX steps_waits ON steps (wait_deadline) WHERE status = 'waiting' AND wait_deadline IS NOT NULL;

-- The append-only event log of a run; (run, seq) is gapless and ordered.
CREATE TABLE run_events (
    tenant_id   uuid NOT NULL,
    run_id      uuid NOT NULL,
    seq         bigint NOT NULL,
    type        text NOT NULL,
    step_id     text,
    data        jsonb NOT NULL DEFAULT '{}',
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, run_id, seq),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, id) ON DELETE CASCADE
);

-- Signals delivered to a run; a `wait_for` step consumes the one with its name.
CREATE TABLE signals (
    tenant_id   uuid NOT NULL,
    run_id      uuid NOT NULL,
    name        text NOT NULL,
    data        jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, run_id, name),
    FOREIGN KEY (tenant_id, run_id) REFERENCES runs (tenant_id, id) ON DELETE CASCADE
);

-- One row per model call, written once: a retried step is a new attempt, and the
-- same call reported twice is ignored by the key.
CREATE TABLE model_calls (
    tenant_id          uuid NOT NULL,
    run_id             uuid NOT NULL,
    step_id            text NOT NULL,
    attempt            integer NOT NULL,
    call_index         integer NOT NULL,
    expert             text NOT NULL,
    model              text NOT NULL,
    prompt_tokens      integer NOT NULL,
    completion_tokens  integer NOT NULL,
    latency_ms         integer NOT NULL,
    outcome            text NOT NULL CHECK (outcome IN ('ok', 'error')),
    error              text,
    started_at         timestamptz NOT NULL,
    created_at         timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, run_id, step_id, attempt, call_index)
);
CREATE INDEX model_calls_by_time ON model_calls (tenant_id, started_at);
