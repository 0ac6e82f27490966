-- headrace schema, version 7 (SQLite): test deliveries sent from the console's "Try a transformation" page.
-- A table of their own, so a test is never an event's delivery: not counted in event statuses or metrics,
-- never claimed by the worker, never replayed, never polled by the tracker. event_id names the stored event
-- tried (no foreign key: retention may remove the event, the test stays), NULL for a bundled sample.
-- job_state: 'open' (created, outcome not known yet), 'success', 'failure', 'unknown'; NULL when nothing was
-- created (outcome 'failed': the run request was refused, or 'cancelled' by the transformation).
CREATE TABLE test_deliveries (
    id               INTEGER PRIMARY KEY,
    destination      TEXT    NOT NULL,
    event_id         INTEGER,
    input            TEXT    NOT NULL,
    event_type       TEXT    NOT NULL,
    script           TEXT    NOT NULL,
    job_id           TEXT    NOT NULL UNIQUE,
    url              TEXT    NOT NULL,
    payload          TEXT,
    http_status      INTEGER,
    outcome          TEXT    NOT NULL CHECK (outcome IN ('delivered', 'failed', 'cancelled')),
    detail           TEXT    NOT NULL DEFAULT '',
    job_state        TEXT    CHECK (job_state IS NULL OR job_state IN ('open', 'success', 'failure', 'unknown')),
    job_checks       INTEGER NOT NULL DEFAULT 0,
    job_checked_at   REAL,
    job_completed_at REAL,
    job_duration_ms  REAL,
    job_excerpt      TEXT    NOT NULL DEFAULT '',
    created_at       REAL    NOT NULL
);
CREATE INDEX test_deliveries_event ON test_deliveries (event_id);
