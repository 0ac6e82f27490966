-- headrace schema, version 2 (PostgreSQL): what became of the Windmill job of each delivery.
-- job_state: NULL (no job created yet), 'open' (created, outcome not known yet: the tracker polls it),
-- 'success', 'failure', or 'unknown' (stopped tracking: gone from Windmill or still running after a day).
ALTER TABLE deliveries ADD COLUMN job_state TEXT
    CHECK (job_state IS NULL OR job_state IN ('open', 'success', 'failure', 'unknown'));
ALTER TABLE deliveries ADD COLUMN job_created_at DOUBLE PRECISION;
ALTER TABLE deliveries ADD COLUMN job_next_check_at DOUBLE PRECISION;
ALTER TABLE deliveries ADD COLUMN job_checks INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN job_completed_at DOUBLE PRECISION;
ALTER TABLE deliveries ADD COLUMN job_duration_ms DOUBLE PRECISION;
ALTER TABLE deliveries ADD COLUMN job_excerpt TEXT NOT NULL DEFAULT '';
-- How many times this delivery's chain was re-run after a failed job (retry_on_job_failure).
ALTER TABLE deliveries ADD COLUMN job_reruns INTEGER NOT NULL DEFAULT 0;

-- Notes on one attempt that are not its outcome: a schema warning, a schema that could not be fetched.
ALTER TABLE attempts ADD COLUMN notes TEXT NOT NULL DEFAULT '';

-- The tracker's work list, and the metrics' queue gauges: both index only the rows still open.
CREATE INDEX deliveries_jobs_open ON deliveries (job_next_check_at) WHERE job_state = 'open';
CREATE INDEX deliveries_open ON deliveries (destination, status, created_at) WHERE status IN ('pending', 'in_flight');
CREATE INDEX deliveries_jobs_failed ON deliveries (destination, job_completed_at) WHERE job_state = 'failure';
