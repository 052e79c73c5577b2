-- A run whose last step committed but whose end did not (the process stopped between
-- the two transactions) is found by this index and ended by any engine's timers.
CREATE INDEX runs_awaiting_end ON runs (tenant_id, id) WHERE remaining_steps = 0 AND status IN ('queued', 'running', 'waiting');
