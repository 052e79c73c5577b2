-- Child workflows: a `workflow:` step starts a run of another workflow and waits for
-- it. The child names its parent so that its end resumes the parent's step and a
-- cancelled parent cancels its children; `depth` bounds chains of children.
ALTER TABLE runs
    ADD COLUMN parent_run_id  uuid,
    ADD COLUMN parent_step_id text,
    ADD COLUMN depth          integer NOT NULL DEFAULT 0;

CREATE INDEX runs_children ON runs (tenant_id, parent_run_id) WHERE parent_run_id IS NOT NULL;
