-- headrace schema, version 4 (PostgreSQL): indexes over the rows still open, so what an idle worker, the tracker,
-- the console's counts and `events --status pending|failed|job_failed` read depends on the open (or failed)
-- rows, not on the history that grows with every event.
-- The worker: due pending deliveries per destination, expired leases per destination, the next due time.
CREATE INDEX deliveries_pending_due ON deliveries (destination, next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_next_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_leased ON deliveries (destination, lease_until) WHERE status = 'in_flight';
-- The console's failed counts, and the events an attention status can be found among (models.ATTENTION_STATUSES).
CREATE INDEX deliveries_failed ON deliveries (destination) WHERE status = 'failed';
CREATE INDEX deliveries_attention ON deliveries (event_id)
    WHERE status IN ('pending', 'in_flight', 'failed') OR job_state = 'failure';
-- Replaced by the partial indexes above: it indexed every delivery ever made, and each status change moved it.
DROP INDEX deliveries_due;
