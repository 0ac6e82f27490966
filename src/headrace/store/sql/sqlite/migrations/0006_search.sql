-- headrace schema, version 6 (SQLite): payload search (headrace/search.py decides what is indexed).
-- One FTS5 row per event (rowid = events.id) holding the event's search terms, already split and case-folded
-- by headrace: the tokenizer only splits at spaces (every letter, digit, mark, punctuation and symbol is part
-- of a token), so `pay_0NW3…` and `ada@example.com` are one token each. Written in the event's transaction.
CREATE VIRTUAL TABLE event_search USING fts5(
    terms,
    tokenize = "unicode61 remove_diacritics 0 categories 'L* N* M* P* S*'",
    columnsize = 0
);
-- An event deleted (retention) takes its search row with it.
CREATE TRIGGER events_search_delete AFTER DELETE ON events BEGIN
    DELETE FROM event_search WHERE rowid = old.id;
END;
-- Events stored before this version are indexed after the migration, newest first, in batches
-- (Store.index_backlog, run by `serve`, `worker` and `headrace db migrate`): every event with
-- id <= this value still waits. 0 when none does.
INSERT INTO meta (key, value) SELECT 'search_backlog', CAST(COALESCE(MAX(id), 0) AS TEXT) FROM events;
