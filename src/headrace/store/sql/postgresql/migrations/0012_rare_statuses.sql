-- headrace schema, version 12 (PostgreSQL): `events --status unrouted|cancelled` without reading all history.
-- Like the attention statuses (0004), each rare status is looked for among the few events that can have it:
-- unrouted: an event with no delivery at all, marked `unrouted = 1` when ingest stored it with no route and
-- unmarked when a replay gives it one; cancelled: an event with a cancelled delivery (its transformation set
-- cancel). The old rows are marked here, in one pass over the events.
ALTER TABLE events ADD COLUMN unrouted SMALLINT;
UPDATE events e SET unrouted = 1 WHERE NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id);
CREATE INDEX events_unrouted ON events (id) WHERE unrouted = 1;
CREATE INDEX deliveries_cancelled ON deliveries (event_id) WHERE status = 'cancelled';
