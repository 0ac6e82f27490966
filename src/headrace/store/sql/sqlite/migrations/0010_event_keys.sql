-- headrace schema, version 10 (SQLite): what `headrace reconcile` needs (headrace/dodo/keys.py, reconcile.py).
-- event_key: the business event a body reports (type + object id, and a dispute's stage or a renewal's payment
-- id), NULL when it names no object. origin: 'dodo' for a webhook received, 'reconcile' for one synthesized
-- from Dodo's API. duplicate_of: the stored event this one repeats (stored, never delivered). note: what the
-- timeline says about how the event came to be (which time a synthesized timestamp is, what it duplicates).
-- Old rows get their key from the body, by the same Python rule as new ones: their ids are queued in
-- event_keys_pending and keyed at the next start of `serve` or `headrace db migrate` (Store.key_backlog).
-- alive: one row per run of `serve`, its start and its last heartbeat (a gap longer than Dodo's retry window
-- means events that were never retried; headrace/outages.py). reconciled: the windows `headrace reconcile
-- --apply` covered (an outage inside one is no longer reported).
ALTER TABLE events ADD COLUMN event_key TEXT;
ALTER TABLE events ADD COLUMN origin TEXT NOT NULL DEFAULT 'dodo' CHECK (origin IN ('dodo', 'reconcile'));
ALTER TABLE events ADD COLUMN duplicate_of INTEGER;
ALTER TABLE events ADD COLUMN note TEXT NOT NULL DEFAULT '';
CREATE INDEX events_event_key ON events (source, event_key);
-- The late-copy lookup every keyed webhook makes (find_reconciled_twin) reads only synthesized events: empty
-- until `reconcile --apply` stores one, so the lookup costs no row read on ingest's path.
CREATE INDEX events_reconciled_key ON events (source, event_key, received_at) WHERE origin = 'reconcile';
CREATE TABLE event_keys_pending (
    event_id INTEGER PRIMARY KEY
);
INSERT INTO event_keys_pending (event_id) SELECT id FROM events;
CREATE TABLE alive (
    id         INTEGER PRIMARY KEY,
    instance   TEXT NOT NULL,
    started_at REAL NOT NULL,
    last_at    REAL NOT NULL
);
CREATE INDEX alive_last_at ON alive (last_at);
CREATE TABLE reconciled (
    id     INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    since  REAL NOT NULL,
    until  REAL NOT NULL,
    at     REAL NOT NULL
);
CREATE INDEX reconciled_until ON reconciled (until);
