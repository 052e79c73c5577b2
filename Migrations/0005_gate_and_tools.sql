-- The MoE gate and tool execution.

-- The gate's decision for a model step, as shown by the API:
-- {"policy", "expert", "score", "threshold", "reasons", "escalated"}.
ALTER TABLE steps ADD COLUMN route jsonb;
-- Explicit feedback on a finished step's answer (POST …/feedback); the gate
-- learned from it once, and learns the difference when it changes.
ALTER TABLE steps ADD COLUMN feedback boolean;

-- What the gate has learned about each step of each tenant: outcomes of each
-- expert, kept as (possibly decayed) counts. Shared by all replicas; updated
-- under the row lock so concurrent outcomes all count.
CREATE TABLE gate_history (
    tenant_id        uuid NOT NULL REFERENCES tenants (id),
    step_key         text NOT NULL,
    flash_successes  double precision NOT NULL DEFAULT 0,
    flash_failures   double precision NOT NULL DEFAULT 0,
    pro_successes    double precision NOT NULL DEFAULT 0,
    pro_failures     double precision NOT NULL DEFAULT 0,
    updated_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, step_key)
);

-- The tenant's quality/cost target for `model: auto` (NULL: the server default),
-- and hosts or CIDRs its HTTP tools may reach beyond the server's egress list.
ALTER TABLE tenants ADD COLUMN gate_threshold double precision;
ALTER TABLE tenants ADD COLUMN egress_allow text[] NOT NULL DEFAULT '{}';

-- Tenant secrets for tool headers, sealed with AES-GCM (the key never reaches
-- the database; the ciphertext is bound to tenant and name).
CREATE TABLE secrets (
    tenant_id   uuid NOT NULL REFERENCES tenants (id),
    name        text NOT NULL,
    ciphertext  bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, name)
);
