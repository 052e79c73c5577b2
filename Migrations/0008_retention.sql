-- Retention: finished runs (with their steps, events and signals) are deleted once
-- they are older than their tenant's retention, in short batches (see
-- RetentionRepository). The ledger (model_calls) has no foreign key to runs and is
-- never touched by run pruning: it is the bill, and reports over it give the same
-- totals before and after.

-- Per tenant, in milliseconds: NULL uses the server's default (`retention:` in its
-- config); 0 keeps forever. Events may be kept for less time than their runs: the
-- run row, its steps and its final event stay, the rest of its log goes.
ALTER TABLE tenants
    ADD COLUMN run_retention_ms    bigint CHECK (run_retention_ms >= 0),
    ADD COLUMN event_retention_ms  bigint CHECK (event_retention_ms >= 0);

-- When a run's log was cut down to its final event (event retention), so that the
-- next pass does not look at it again.
ALTER TABLE runs ADD COLUMN events_pruned_at timestamptz;

-- The pruner walks a tenant's finished runs oldest first. A live run has no
-- finished_at, so it is in neither index; a run whose log was pruned leaves the
-- second, so a pass never rescans what earlier passes did.
CREATE INDEX runs_finished ON runs (tenant_id, finished_at) WHERE finished_at IS NOT NULL;
CREATE INDEX runs_events_unpruned ON runs (tenant_id, finished_at) WHERE finished_at IS NOT NULL AND events_pruned_at IS NULL;

-- The tables that churn (rows inserted by every run, deleted by pruning) are
-- vacuumed after 5 % of their rows are dead rather than PostgreSQL's default 20 %,
-- which keeps dead tuples and the space they hold bounded between pruning passes.
ALTER TABLE runs SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE steps SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE run_events SET (autovacuum_vacuum_scale_factor = 0.05);
ALTER TABLE signals SET (autovacuum_vacuum_scale_factor = 0.05);
