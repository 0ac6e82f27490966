-- headrace schema, version 8 (SQLite): payload search indexed after the commit, not in it.
-- Ingest used to compute an event's search terms and write its FTS5 row inside the ingest transaction:
-- that halved ingest (bench/ingest.py). Now a trigger queues the new event's id here, in the same
-- transaction (so nothing stored is ever left out of the index), and `serve` indexes the queue in batches
-- after the commit (headrace/indexer.py; Store.index_pending). An id whose event is gone when its turn
-- comes is simply dequeued.
CREATE TABLE search_pending (
    event_id INTEGER PRIMARY KEY
);
CREATE TRIGGER events_search_queue AFTER INSERT ON events BEGIN
    INSERT OR IGNORE INTO search_pending (event_id) VALUES (new.id);
END;
