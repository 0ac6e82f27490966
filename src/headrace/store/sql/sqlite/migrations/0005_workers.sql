-- headrace schema, version 5 (SQLite): worker processes and their heartbeats (deliver/heartbeat.py).
-- Each worker registers a row and beats every second; a row whose heartbeat is older than the dead-after
-- limit belongs to a dead process: any live worker releases its leases at once and deletes the row.
CREATE TABLE workers (
    id           TEXT    PRIMARY KEY,
    host         TEXT    NOT NULL,
    pid          INTEGER NOT NULL,
    started_at   REAL    NOT NULL,
    heartbeat_at REAL    NOT NULL
);
-- The worker whose tracker leased a job for a look (NULL once the look is recorded), so a dead worker's
-- job leases are released with its delivery leases. A delivery's lease_owner starts with its worker's id.
ALTER TABLE deliveries ADD COLUMN job_lease_owner TEXT;
