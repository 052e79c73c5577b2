-- Claiming takes ready steps tenant by tenant (in proportion to each tenant's weight)
-- so that one tenant's backlog does not delay another tenant's first step. This index
-- lets the claim find the tenants with ready work and each one's oldest steps.
CREATE INDEX steps_ready_by_tenant ON steps (tenant_id, ready_at) WHERE status = 'ready';
