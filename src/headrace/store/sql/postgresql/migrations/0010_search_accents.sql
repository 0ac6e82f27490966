-- headrace schema, version 10 (PostgreSQL): payload search folds accents on Latin letters (`jose` finds
-- José; headrace/search.py, `fold`). Every stored event is queued to be indexed again with the new rule;
-- the indexer replaces each row in turn, newest first, so search keeps working meanwhile: until its turn
-- comes, an older event with accented text is found by its other terms (ids, emails) but not by its names.
INSERT INTO search_pending (event_id) SELECT id FROM events ON CONFLICT DO NOTHING;
