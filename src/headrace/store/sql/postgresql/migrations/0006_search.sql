-- headrace schema, version 6 (PostgreSQL): payload search (headrace/search.py decides what is indexed).
-- One row per event holding its search terms as a tsvector built from headrace's own terms (already split
-- and case-folded: no text-search parser or dictionary is applied), with positions for phrases; a GIN index
-- answers exact and prefix (`:*`) lexeme queries. Written in the event's transaction.
CREATE TABLE event_search (
    event_id BIGINT PRIMARY KEY REFERENCES events (id) ON DELETE CASCADE,
    terms    TSVECTOR NOT NULL
);
CREATE INDEX event_search_terms ON event_search USING GIN (terms);
-- Events stored before this version are indexed after the migration, newest first, in batches
-- (Store.index_backlog, run by `serve`, `worker` and `headrace db migrate`): every event with
-- id <= this value still waits. 0 when none does.
INSERT INTO meta (key, value) SELECT 'search_backlog', COALESCE(MAX(id), 0)::text FROM events;
