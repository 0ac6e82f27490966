-- Bulk forms of queries in queries.sql, with the same names, for PostgreSQL group commit
-- (store/postgres_group.py): when several operations of one batch run the same query in the same round,
-- the batch runs its bulk form once; and for a `many` step of any other operation (store/postgres.py), which
-- runs it once instead of once per parameter set. Each parameter is the list of that parameter's values, in the
-- operations' order. A bulk form of a query that returns one row returns, for each input that produced
-- one, that row with `n`, the input's 1-based place in the lists.

-- name: insert_event
-- Inputs are inserted in their order, so of two with the same (source, webhook_id) the first is stored and
-- the second, as with the single form, gets no row and is then found as a duplicate.
WITH input AS (
    SELECT *
    FROM unnest(%(source)b::text[], %(webhook_id)b::text[], %(event_type)b::text[],
                %(webhook_timestamp)b::bigint[], %(received_at)b::double precision[], %(body)b::bytea[],
                %(headers)b::text[], %(event_key)b::text[], %(origin)b::text[], %(duplicate_of)b::bigint[],
                %(note)b::text[])
        WITH ORDINALITY AS i (source, webhook_id, event_type, webhook_timestamp, received_at, body, headers,
                              event_key, origin, duplicate_of, note, n)
), inserted AS (
    INSERT INTO events (source, webhook_id, event_type, webhook_timestamp, received_at, body, headers, event_key,
                        origin, duplicate_of, note)
    SELECT source, webhook_id, event_type, webhook_timestamp, received_at, body, headers, event_key, origin,
           duplicate_of, note
    FROM input ORDER BY n
    ON CONFLICT (source, webhook_id) DO NOTHING
    RETURNING id, source, webhook_id
)
SELECT DISTINCT ON (inserted.id) input.n, inserted.id
FROM inserted JOIN input USING (source, webhook_id)
ORDER BY inserted.id, input.n;

-- name: insert_delivery
INSERT INTO deliveries (event_id, destination, generation, job_id, status, next_attempt_at, created_at, updated_at)
SELECT event_id, destination, generation, job_id, 'pending', now, now, now
FROM unnest(%(event_id)b::bigint[], %(destination)b::text[], %(generation)b::integer[], %(job_id)b::text[],
            %(now)b::double precision[])
    WITH ORDINALITY AS i (event_id, destination, generation, job_id, now, n)
ORDER BY n
ON CONFLICT (event_id, destination, generation) DO NOTHING;

-- name: find_reconciled_twin
-- The late-copy lookup of a batch of ingests (queries.sql has the single form): a row, with `n`, only for the
-- inputs that have a twin.
SELECT i.n, t.id
FROM unnest(%(source)b::text[], %(event_key)b::text[], %(occurred_at)b::double precision[])
    WITH ORDINALITY AS i (source, event_key, occurred_at, n)
CROSS JOIN LATERAL (
    SELECT e.id FROM events e
    WHERE e.source = i.source AND e.event_key = i.event_key AND e.origin = 'reconcile'
      AND e.received_at >= i.occurred_at
    ORDER BY e.id LIMIT 1
) AS t;

-- name: index_event
-- The indexer's rows (programs/search.py), one statement for the round instead of one per event: 5 µs of
-- Python a row instead of 17, and the server's per-statement work once. Should an id come twice, the last
-- terms win, as with the single form run in order.
INSERT INTO event_search (event_id, terms)
SELECT DISTINCT ON (i.event_id) e.id, i.terms::tsvector
FROM unnest(%(event_id)b::bigint[], %(terms)b::text[]) WITH ORDINALITY AS i (event_id, terms, n)
JOIN events e ON e.id = i.event_id
ORDER BY i.event_id, i.n DESC
ON CONFLICT (event_id) DO UPDATE SET terms = EXCLUDED.terms;
