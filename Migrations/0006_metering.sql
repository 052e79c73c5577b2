-- Exact per-tenant metering: the price book, the ledger's money columns, budgets
-- with reservations, and fair-use limits. Money is an integer of pico-USD
-- (1e-12 USD); prices are integers of micro-USD per million tokens, so the cost
-- of n tokens is exactly n × price pico-USD. No floating point on this path.

-- Effective-dated prices per model name (matched as the longest prefix of the
-- billed model). Rows are never edited once calls cite them: a new row takes over.
CREATE TABLE prices (
    id                text PRIMARY KEY,
    model             text NOT NULL,
    effective_from    timestamptz NOT NULL,
    input_cache_hit   bigint NOT NULL CHECK (input_cache_hit >= 0),
    input_cache_miss  bigint NOT NULL CHECK (input_cache_miss >= 0),
    output            bigint NOT NULL CHECK (output >= 0),
    -- {"windows": [{"weekdays": [1..7], "start_hour", "end_hour"}], "input_cache_hit", "input_cache_miss", "output"}
    peak              jsonb,
    created_at        timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model, effective_from)
);

-- The ledger: each model call row gains its token split, the price row that
-- priced it and its cost. cost_pusd is NULL for an unpriced model (metered in
-- tokens only, never silently free). usage_known is false when the call ended
-- before its usage was reported; its cost is then an upper-bound estimate.
ALTER TABLE model_calls
    ADD COLUMN cache_hit_tokens   integer NOT NULL DEFAULT 0,
    ADD COLUMN cache_miss_tokens  integer NOT NULL DEFAULT 0,
    ADD COLUMN reasoning_tokens   integer NOT NULL DEFAULT 0,
    ADD COLUMN usage_known        boolean NOT NULL DEFAULT true,
    ADD COLUMN price_id           text REFERENCES prices (id),
    ADD COLUMN cost_pusd          bigint,
    ADD COLUMN workflow           text;

-- A tenant's budget per calendar month (UTC). on_budget: what a call that does
-- not fit does by default (fail the step, or let the gate downgrade pro to flash).
CREATE TABLE budgets (
    tenant_id           uuid PRIMARY KEY REFERENCES tenants (id),
    monthly_limit_pusd  bigint NOT NULL CHECK (monthly_limit_pusd >= 0),
    on_budget           text NOT NULL DEFAULT 'fail' CHECK (on_budget IN ('fail', 'downgrade')),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- One row per model call in flight, written before the request is sent: the
-- worst case it may cost. Settling replaces it with the ledger row in one
-- transaction; a reservation whose step attempt is no longer running (its process
-- died, or the run was cancelled) becomes a ledger row at its reserved amount.
CREATE TABLE reservations (
    tenant_id     uuid NOT NULL,
    run_id        uuid NOT NULL,
    step_id       text NOT NULL,
    attempt       integer NOT NULL,
    call_index    integer NOT NULL,
    workflow      text NOT NULL,
    expert        text NOT NULL,
    model         text NOT NULL,
    price_id      text REFERENCES prices (id),
    amount_pusd   bigint NOT NULL CHECK (amount_pusd >= 0),
    started_at    timestamptz NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, run_id, step_id, attempt, call_index)
);

-- Budget alerts already raised, once per tenant, month and threshold.
CREATE TABLE budget_alerts (
    tenant_id  uuid NOT NULL REFERENCES tenants (id),
    period     date NOT NULL,
    percent    integer NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, period, percent)
);

-- Fair use: a token bucket on run creation per tenant (NULL: the server's
-- configuration), kept in the database so that every server shares it.
ALTER TABLE tenants
    ADD COLUMN runs_per_second  double precision,
    ADD COLUMN run_burst        integer;
CREATE TABLE run_buckets (
    tenant_id   uuid PRIMARY KEY REFERENCES tenants (id),
    tokens      double precision NOT NULL,
    updated_at  timestamptz NOT NULL
);

-- A tenant's cap on concurrently running steps (tenants.max_concurrent_steps, else
-- the server's) is checked at claim time by counting its running steps.
CREATE INDEX steps_running_by_tenant ON steps (tenant_id) WHERE status = 'running';
