-- headrace schema, version 1 (SQLite). Times are unix seconds (REAL).
CREATE TABLE events (
    id                INTEGER PRIMARY KEY,
    source            TEXT    NOT NULL,
    webhook_id        TEXT    NOT NULL,
    event_type        TEXT    NOT NULL,
    webhook_timestamp INTEGER NOT NULL,
    received_at       REAL    NOT NULL,
    body              BLOB    NOT NULL,
    headers           TEXT    NOT NULL,
    UNIQUE (source, webhook_id)
);
CREATE INDEX events_received_at ON events (received_at);
CREATE INDEX events_event_type ON events (event_type);

CREATE TABLE deliveries (
    id              INTEGER PRIMARY KEY,
    event_id        INTEGER NOT NULL REFERENCES events (id),
    destination     TEXT    NOT NULL,
    generation      INTEGER NOT NULL,
    job_id          TEXT    NOT NULL,
    status          TEXT    NOT NULL CHECK (status IN ('pending', 'in_flight', 'delivered', 'failed', 'cancelled')),
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at REAL,
    lease_owner     TEXT,
    lease_until     REAL,
    last_error      TEXT    NOT NULL DEFAULT '',
    windmill_job_id TEXT,
    payload         TEXT,
    created_at      REAL    NOT NULL,
    updated_at      REAL    NOT NULL,
    UNIQUE (event_id, destination, generation)
);
CREATE INDEX deliveries_due ON deliveries (destination, status, next_attempt_at);
CREATE INDEX deliveries_lease ON deliveries (lease_owner) WHERE status = 'in_flight';
CREATE INDEX deliveries_event ON deliveries (event_id);

CREATE TABLE attempts (
    id               INTEGER PRIMARY KEY,
    delivery_id      INTEGER NOT NULL REFERENCES deliveries (id),
    number           INTEGER NOT NULL,
    started_at       REAL    NOT NULL,
    duration_ms      REAL    NOT NULL,
    http_status      INTEGER,
    outcome          TEXT    NOT NULL,
    detail           TEXT    NOT NULL DEFAULT '',
    response_excerpt TEXT    NOT NULL DEFAULT '',
    UNIQUE (delivery_id, number)
);

CREATE TABLE rejections (
    id     INTEGER PRIMARY KEY,
    source TEXT    NOT NULL,
    reason TEXT    NOT NULL,
    status INTEGER NOT NULL,
    detail TEXT    NOT NULL,
    remote TEXT    NOT NULL,
    at     REAL    NOT NULL
);
CREATE INDEX rejections_at ON rejections (at);
