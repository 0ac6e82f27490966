-- headrace schema, version 9 (PostgreSQL): payload search indexed after the commit, not in it.
-- Ingest used to write each event's tsvector row (and its GIN entries) inside the ingest transaction. Now a
-- statement-level trigger queues the new events' ids here, in the same statement (so nothing stored is ever
-- left out of the index: group commit, `db copy` and any other INSERT alike), and `serve` indexes the queue
-- in batches after the commit (headrace/indexer.py; Store.index_pending). An id whose event is gone
-- when its turn comes is simply dequeued.
CREATE TABLE search_pending (
    event_id BIGINT PRIMARY KEY
);
CREATE FUNCTION headrace_queue_search() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO search_pending (event_id) SELECT id FROM inserted_events ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER events_search_queue AFTER INSERT ON events REFERENCING NEW TABLE AS inserted_events
    FOR EACH STATEMENT EXECUTE FUNCTION headrace_queue_search();
