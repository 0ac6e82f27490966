-- Named queries for the PostgreSQL store. One block per query, introduced by `-- name: NAME`.
-- The same names as the SQLite dialect (a test checks); parameters are psycopg's %(name)s.
-- A parameter that may be NULL and is tested with IS NULL carries a cast, since NULL alone has no type.
-- PostgreSQL sorts NULL after every value (SQLite before): an ORDER BY over a nullable column says where.

-- name: insert_event
INSERT INTO events (source, webhook_id, event_type, webhook_timestamp, received_at, body, headers,
                    event_key, origin, duplicate_of, note)
VALUES (%(source)s, %(webhook_id)s, %(event_type)s, %(webhook_timestamp)s, %(received_at)s, %(body)s, %(headers)s,
        %(event_key)s, %(origin)s, %(duplicate_of)s, %(note)s)
ON CONFLICT (source, webhook_id) DO NOTHING
RETURNING id;

-- name: find_event_id
SELECT id FROM events WHERE source = %(source)s AND webhook_id = %(webhook_id)s;

-- name: insert_delivery
INSERT INTO deliveries (event_id, destination, generation, job_id, status, next_attempt_at, created_at, updated_at)
VALUES (%(event_id)s, %(destination)s, %(generation)s, %(job_id)s, 'pending', %(now)s, %(now)s, %(now)s)
ON CONFLICT (event_id, destination, generation) DO NOTHING;

-- name: insert_rerun
INSERT INTO deliveries (event_id, destination, generation, job_id, status, next_attempt_at, created_at, updated_at,
                        job_reruns)
VALUES (%(event_id)s, %(destination)s, %(generation)s, %(job_id)s, 'pending', %(now)s, %(now)s, %(now)s,
        %(job_reruns)s)
ON CONFLICT (event_id, destination, generation) DO NOTHING;

-- name: claim_due
-- SKIP LOCKED: rows another instance is claiming right now are passed over, not waited for and never
-- taken twice. The CTE is materialized so the lock is taken once, before the update.
WITH due AS MATERIALIZED (
    SELECT id FROM deliveries
    WHERE destination = %(destination)s
      AND ((status = 'pending' AND next_attempt_at <= %(now)s)
           OR (status = 'in_flight' AND lease_until < %(now)s))
    ORDER BY next_attempt_at, id
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d
SET status = 'in_flight', lease_owner = %(token)s, lease_until = %(lease_until)s, updated_at = %(now)s
FROM due
WHERE d.id = due.id;

-- name: claimed_by
SELECT d.id, d.event_id, d.destination, d.generation, d.job_id, d.attempts,
       e.source, e.webhook_id, e.event_type, e.body, e.origin
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.lease_owner = %(token)s AND d.status = 'in_flight'
ORDER BY d.id;

-- name: finish_delivery
UPDATE deliveries
SET status = %(status)s, attempts = attempts + 1, next_attempt_at = %(next_attempt_at)s,
    last_error = %(last_error)s, windmill_job_id = COALESCE(%(windmill_job_id)s, windmill_job_id),
    payload = COALESCE(%(payload)s, payload), lease_owner = NULL, lease_until = NULL, updated_at = %(now)s,
    job_state = COALESCE(%(job_state)s, job_state),
    job_created_at = COALESCE(%(job_created_at)s, job_created_at),
    job_next_check_at = %(job_next_check_at)s,
    job_completed_at = COALESCE(%(job_completed_at)s, job_completed_at),
    job_duration_ms = COALESCE(%(job_duration_ms)s, job_duration_ms),
    job_excerpt = COALESCE(%(job_excerpt)s, job_excerpt)
WHERE id = %(delivery_id)s AND lease_owner = %(token)s AND status = 'in_flight';

-- name: insert_attempt
-- Right after finish_delivery in its transaction: the attempt's number is the count it just raised (read back here
-- rather than with RETURNING, which made SQLite's UPDATE ~5 us slower).
INSERT INTO attempts (delivery_id, number, started_at, duration_ms, http_status, outcome, detail, response_excerpt,
                      notes)
VALUES (%(delivery_id)s, (SELECT attempts FROM deliveries WHERE id = %(delivery_id)s), %(started_at)s, %(duration_ms)s,
        %(http_status)s, %(outcome)s, %(detail)s, %(response_excerpt)s, %(notes)s);

-- name: release_delivery
UPDATE deliveries
SET status = 'pending', lease_owner = NULL, lease_until = NULL, next_attempt_at = %(now)s, updated_at = %(now)s
WHERE id = %(delivery_id)s AND lease_owner = %(token)s AND status = 'in_flight';

-- Worker processes and their heartbeats (deliver/heartbeat.py).

-- name: register_worker
INSERT INTO workers (id, host, pid, started_at, heartbeat_at)
VALUES (%(worker_id)s, %(host)s, %(pid)s, %(now)s, %(now)s);

-- name: beat_worker
UPDATE workers SET heartbeat_at = %(now)s WHERE id = %(worker_id)s;

-- name: worker_alive
-- Checked in the claim's transaction. KEY SHARE: a heartbeat (no key change) does not wait for it, but the
-- reaper's DELETE does, so a worker is never reaped between this check and its claim's commit.
SELECT id FROM workers WHERE id = %(worker_id)s FOR KEY SHARE;

-- name: dead_workers
-- SKIP LOCKED: two reapers never handle one dead worker twice; a row locked by its own heartbeat or claim
-- is left for the next round.
SELECT id, heartbeat_at FROM workers WHERE heartbeat_at < %(dead_before)s AND id <> %(worker_id)s
ORDER BY id FOR UPDATE SKIP LOCKED;

-- name: release_worker_deliveries
-- Every delivery a worker holds: its lease tokens are the worker's id, '#', a number.
UPDATE deliveries
SET status = 'pending', lease_owner = NULL, lease_until = NULL, next_attempt_at = %(now)s, updated_at = %(now)s
WHERE status = 'in_flight' AND left(lease_owner, length(%(prefix)s)) = %(prefix)s;

-- name: renew_worker_leases
-- A live worker's beat: its deliveries in flight stay leased while it beats, however long an attempt takes (a slow
-- schema lookup, the sandbox's queue, the confirmation), so only a dead or silent worker's are claimed again.
UPDATE deliveries SET lease_until = %(lease_until)s
WHERE status = 'in_flight' AND lease_until < %(lease_until)s AND left(lease_owner, length(%(prefix)s)) = %(prefix)s;

-- name: release_worker_jobs
UPDATE deliveries
SET job_next_check_at = %(now)s, job_lease_owner = NULL
WHERE job_state = 'open' AND job_lease_owner = %(worker_id)s;

-- name: delete_worker
DELETE FROM workers WHERE id = %(worker_id)s;

-- name: live_workers
SELECT COUNT(*) AS n FROM workers WHERE heartbeat_at >= %(since)s;

-- name: next_due
SELECT MIN(next_attempt_at) AS due FROM deliveries WHERE status = 'pending';

-- name: insert_rejection
INSERT INTO rejections (source, reason, status, detail, remote, at)
VALUES (%(source)s, %(reason)s, %(status)s, %(detail)s, %(remote)s, %(at)s);

-- name: list_rejections
SELECT id, source, reason, status, detail, remote, at FROM rejections
WHERE (%(since)s::double precision IS NULL OR at >= %(since)s)
ORDER BY id DESC LIMIT %(limit)s;

-- name: count_rejections
SELECT source, reason, COUNT(*) AS n FROM rejections GROUP BY source, reason ORDER BY source, reason;

-- fragment: event_status
-- models.event_status in SQL, the one copy of the rule in this dialect: an aggregate over the deliveries `d` of
-- one event a query selects (each destination's newest generation, {{newest_generation}}): unrouted (none),
-- pending (any open), failed (any failed), job_failed (a Windmill job failed), delivered, else cancelled.
-- A contract test checks every query that reports a status against models.event_status.
CASE
    WHEN COUNT(*) = 0 THEN 'unrouted'
    WHEN COUNT(CASE WHEN d.status IN ('pending', 'in_flight') THEN 1 END) > 0 THEN 'pending'
    WHEN COUNT(CASE WHEN d.status = 'failed' THEN 1 END) > 0 THEN 'failed'
    WHEN COUNT(CASE WHEN d.job_state = 'failure' THEN 1 END) > 0 THEN 'job_failed'
    WHEN COUNT(CASE WHEN d.status = 'delivered' THEN 1 END) > 0 THEN 'delivered'
    ELSE 'cancelled' END

-- fragment: newest_generation
-- Delivery `d` is the newest generation of its event and destination (a replay adds one; only the newest counts).
d.generation = (SELECT MAX(d2.generation) FROM deliveries d2
                WHERE d2.event_id = d.event_id AND d2.destination = d.destination)

-- fragment: listed_event
-- The columns every event list returns, with each event's status ({{event_status}} over its newest generations).
SELECT e.id, e.source, e.webhook_id, e.event_type, e.webhook_timestamp, e.received_at, e.origin,
           (SELECT {{event_status}} FROM deliveries d WHERE d.event_id = e.id AND {{newest_generation}}) AS status
    FROM events e

-- fragment: event_filters
-- The filters every event list takes (source, origin, type, time, page), AND-ed after its own WHERE.
(%(source)s::text IS NULL OR e.source = %(source)s)
      AND (%(origin)s::text IS NULL OR e.origin = %(origin)s)
      AND (%(type_exact)s::text IS NULL OR e.event_type = %(type_exact)s)
      AND (%(type_prefix)s::text IS NULL OR starts_with(e.event_type, %(type_prefix)s))
      AND (%(since)s::double precision IS NULL OR e.received_at >= %(since)s)
      AND (%(until)s::double precision IS NULL OR e.received_at < %(until)s)
      AND (%(before_id)s::bigint IS NULL OR e.id < %(before_id)s)

-- name: list_events
-- The event-type filter is an exact name (type_exact) or a prefix (type_prefix): no wildcard characters.
SELECT * FROM (
    {{listed_event}}
    WHERE {{event_filters}}
    ORDER BY e.id DESC
) AS listed
WHERE (%(status)s::text IS NULL OR status = %(status)s)
LIMIT %(limit)s;

-- name: list_events_cancelled
-- list_events for status cancelled: only an event with a cancelled delivery can have it, and
-- deliveries_cancelled lists exactly those (migration 0011 SQLite, 0012 PostgreSQL). list_events word for word
-- plus the candidate filter (a test checks).
SELECT * FROM (
    {{listed_event}}
    WHERE e.id IN (SELECT event_id FROM deliveries WHERE status = 'cancelled')
      AND {{event_filters}}
    ORDER BY e.id DESC
) AS listed
WHERE (%(status)s::text IS NULL OR status = %(status)s)
LIMIT %(limit)s;

-- name: list_events_unrouted
-- list_events for status unrouted: the events marked unrouted (no delivery at all), over events_unrouted.
-- list_events word for word plus the candidate filter (a test checks).
SELECT * FROM (
    {{listed_event}}
    WHERE e.unrouted = 1
      AND {{event_filters}}
    ORDER BY e.id DESC
) AS listed
WHERE (%(status)s::text IS NULL OR status = %(status)s)
LIMIT %(limit)s;

-- name: mark_unrouted
-- Ingest stored the event with no route.
UPDATE events SET unrouted = 1 WHERE id = %(event_id)s;

-- name: mark_routed
-- A replay gave the event a delivery: it is no longer unrouted.
UPDATE events SET unrouted = NULL WHERE id = %(event_id)s AND unrouted = 1;

-- name: list_events_attention
-- list_events for a status in models.ATTENTION_STATUSES: only events with an open or failed delivery or a
-- failed job can have one, and deliveries_attention lists exactly those, so history is not read. The query
-- is list_events' own, word for word (a test checks); the candidates are narrowed to the deliveries
-- the asked status needs (a failed one for failed, an open one for pending, a failed job for job_failed).
SELECT * FROM (
    {{listed_event}}
    WHERE e.id IN (SELECT event_id FROM deliveries
                   WHERE (status IN ('pending', 'in_flight', 'failed') OR job_state = 'failure')
                     AND CASE %(status)s WHEN 'pending' THEN status IN ('pending', 'in_flight')
                                   WHEN 'failed' THEN status = 'failed'
                                   ELSE job_state = 'failure' END)
      AND {{event_filters}}
    ORDER BY e.id DESC
) AS listed
WHERE (%(status)s::text IS NULL OR status = %(status)s)
LIMIT %(limit)s;

-- name: get_event
SELECT id, source, webhook_id, event_type, webhook_timestamp, received_at, body, headers, event_key, origin,
       duplicate_of, note
FROM events WHERE id = %(event_id)s;

-- name: get_event_by_webhook_id
SELECT id FROM events WHERE webhook_id = %(webhook_id)s ORDER BY id DESC LIMIT 1;

-- name: event_deliveries
SELECT id, destination, generation, job_id, status, attempts, next_attempt_at, last_error,
       windmill_job_id, payload, created_at, updated_at, job_state, job_created_at, job_checks,
       job_completed_at, job_duration_ms, job_excerpt, job_reruns
FROM deliveries WHERE event_id = %(event_id)s ORDER BY destination, generation;

-- name: event_attempts
SELECT a.delivery_id, a.number, a.started_at, a.duration_ms, a.http_status, a.outcome, a.detail,
       a.response_excerpt, a.notes
FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
WHERE d.event_id = %(event_id)s ORDER BY a.delivery_id, a.number;

-- name: latest_generation
SELECT MAX(generation) AS generation FROM deliveries
WHERE event_id = %(event_id)s AND destination = %(destination)s;

-- name: event_key
SELECT source, webhook_id, event_type FROM events WHERE id = %(event_id)s;

-- name: delivery_mark
-- Bulk replay's watermark: the newest delivery id when a count begins.
SELECT MAX(id) AS id FROM deliveries;

-- name: replayed_since
-- Events counted by a bulk replay (ids up to :max_event_id) that got a new delivery after the watermark.
SELECT DISTINCT event_id FROM deliveries WHERE id > %(mark)s AND event_id <= %(max_event_id)s;

-- name: bulk_serialise
-- Bulk replay's lock: every chunk of every bulk replay rewrites this one row first, so on PostgreSQL two
-- chunks (of two instances too) run one after the other and the second sees what the first wrote.
INSERT INTO meta (key, value) VALUES ('bulk_replay_lock', %(at)s)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: bulk_claim
-- A bulk replay confirmation is used once: the first replay of a token inserts its key, any other gets 0 rows.
INSERT INTO meta (key, value) VALUES (%(key)s, %(at)s) ON CONFLICT (key) DO NOTHING;

-- name: failed_since
SELECT d.event_id, d.destination
FROM deliveries d
WHERE d.status = 'failed' AND d.updated_at >= %(since)s
  AND {{newest_generation}}
ORDER BY d.event_id;

-- name: failed_delivery_counts
SELECT destination, COUNT(*) AS n FROM deliveries WHERE status = 'failed' GROUP BY destination;

-- name: health_write
-- A real write (the row is rewritten), so readiness fails when the disk or the database cannot take one.
UPDATE meta SET value = value WHERE key = 'deployment_id';

-- name: next_job_check
SELECT MIN(job_next_check_at) AS due FROM deliveries WHERE job_state = 'open';

-- name: lease_due_jobs
WITH due AS MATERIALIZED (
    SELECT id FROM deliveries
    WHERE job_state = 'open' AND job_next_check_at <= %(now)s
    ORDER BY job_next_check_at
    LIMIT %(limit)s
    FOR UPDATE SKIP LOCKED
)
UPDATE deliveries d
SET job_next_check_at = %(lease_until)s, job_lease_owner = %(owner)s
FROM due
WHERE d.id = due.id
RETURNING d.id;

-- name: open_job
SELECT d.id, d.event_id, d.destination, d.generation, d.windmill_job_id, d.job_id, d.job_checks, d.job_created_at,
       d.job_reruns, e.source, e.webhook_id
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.id = %(delivery_id)s AND d.job_state = 'open';

-- name: open_jobs
SELECT d.id, d.event_id, d.destination, d.generation, d.windmill_job_id, d.job_id, d.job_checks, d.job_created_at,
       d.job_reruns, e.source, e.webhook_id
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb)::bigint) AND d.job_state = 'open'
ORDER BY d.id;

-- name: job_still_open
UPDATE deliveries
SET job_checks = job_checks + 1, job_next_check_at = %(next_check_at)s, job_lease_owner = NULL
WHERE id = %(delivery_id)s AND job_state = 'open';

-- name: job_done
UPDATE deliveries
SET job_state = %(state)s, job_checks = job_checks + 1, job_next_check_at = NULL,
    job_completed_at = %(completed_at)s, job_duration_ms = %(duration_ms)s, job_excerpt = %(excerpt)s,
    updated_at = %(now)s, job_lease_owner = NULL
WHERE id = %(delivery_id)s AND job_state = 'open';

-- name: open_delivery_counts
SELECT destination, status, COUNT(*) AS n, MIN(created_at) AS oldest
FROM deliveries WHERE status IN ('pending', 'in_flight')
GROUP BY destination, status;

-- name: open_job_count
SELECT COUNT(*) AS n FROM deliveries WHERE job_state = 'open';

-- name: job_failures_since
SELECT d.destination, COUNT(*) AS n, MAX(d.job_completed_at) AS last_at,
       (SELECT l.id FROM deliveries l
        WHERE l.destination = d.destination AND l.job_state = 'failure'
        ORDER BY l.job_completed_at DESC NULLS LAST LIMIT 1) AS last_id
FROM deliveries d
WHERE d.job_state = 'failure' AND d.job_completed_at >= %(since)s
GROUP BY d.destination;

-- name: delivery_job
SELECT d.id, d.event_id, d.windmill_job_id, d.job_excerpt, d.job_completed_at, e.webhook_id, e.event_type
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.id = %(delivery_id)s;

-- The console's charts: every query is bounded by a time window and reads it through an index
-- (events_received_at, deliveries_jobs_failed, deliveries_due); a test checks SQLite's plans.

-- name: chart_outcomes
-- Events received per bucket, by the event status of list_events (restricted to one destination's
-- deliveries when :destination is given, and then only events that have one).
-- MATERIALIZED: each event's status is computed once, not once per use of the column.
WITH bucketed AS MATERIALIZED (
    SELECT CAST(FLOOR((e.received_at - %(since)s) / %(step)s) AS INTEGER) AS bucket,
           (SELECT {{event_status}} FROM deliveries d
            WHERE d.event_id = e.id AND (%(destination)s::text IS NULL OR d.destination = %(destination)s)
              AND {{newest_generation}}) AS status
    FROM events e
    WHERE e.received_at >= %(since)s AND e.received_at < %(until)s
)
SELECT bucket, status, COUNT(*) AS n FROM bucketed
WHERE %(destination)s::text IS NULL OR status <> 'unrouted'
GROUP BY bucket, status;

-- name: chart_latencies
-- Seconds from a delivery's creation (the event's arrival, or the replay) to the end of its delivered
-- attempt, by the bucket the event was received in.
SELECT CAST(FLOOR((e.received_at - %(since)s) / %(step)s) AS INTEGER) AS bucket,
       a.started_at + a.duration_ms / 1000.0 - d.created_at AS latency
FROM events e
JOIN deliveries d ON d.event_id = e.id
JOIN attempts a ON a.delivery_id = d.id
WHERE e.received_at >= %(since)s AND e.received_at < %(until)s
  AND a.outcome = 'delivered'
  AND (%(destination)s::text IS NULL OR d.destination = %(destination)s);

-- name: chart_job_failures
-- One destination's failed Windmill jobs per bucket of when they finished.
SELECT CAST(FLOOR((job_completed_at - %(since)s) / %(step)s) AS INTEGER) AS bucket, COUNT(*) AS n
FROM deliveries
WHERE destination = %(destination)s AND job_state = 'failure'
  AND job_completed_at >= %(since)s AND job_completed_at < %(until)s
GROUP BY bucket;

-- name: destination_delivery_errors
-- A destination's newest deliveries in one status (failed, or pending a retry) that carry an error.
SELECT d.id, d.event_id, d.generation, d.status, d.last_error AS error, d.updated_at AS at, e.webhook_id, e.event_type
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.destination = %(destination)s AND d.status = %(status)s AND d.last_error <> ''
  AND d.updated_at >= %(since)s
ORDER BY d.updated_at DESC LIMIT %(limit)s;

-- name: destination_job_errors
-- A destination's newest failed Windmill jobs.
SELECT d.id, d.event_id, d.generation, 'job_failed' AS status, d.job_excerpt AS error, d.job_completed_at AS at,
       e.webhook_id, e.event_type
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.destination = %(destination)s AND d.job_state = 'failure' AND d.job_completed_at >= %(since)s
ORDER BY d.job_completed_at DESC LIMIT %(limit)s;

-- name: schema_version
SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations;

-- name: schema_probe
-- Every column of every table this binary uses: a database whose tables differ (a renamed column, a
-- table missing) fails readiness instead of failing each request. No row is read.
SELECT
       e.id, e.source, e.webhook_id, e.event_type, e.webhook_timestamp, e.received_at, e.body, e.headers,
       e.event_key, e.origin, e.duplicate_of, e.note, e.unrouted, k.event_id, v.id, v.instance, v.started_at, v.last_at,
       c.id, c.source, c.since, c.until, c.at, d.id,
       d.event_id, d.destination, d.generation, d.job_id, d.status, d.attempts, d.next_attempt_at,
       d.lease_owner, d.lease_until, d.last_error, d.windmill_job_id, d.payload, d.created_at, d.updated_at,
       d.job_state, d.job_created_at, d.job_next_check_at, d.job_checks, d.job_completed_at, d.job_duration_ms,
       d.job_excerpt, d.job_reruns, d.job_lease_owner, a.id, a.delivery_id, a.number, a.started_at, a.duration_ms, a.http_status,
       a.outcome, a.detail, a.response_excerpt, a.notes, r.id, r.source, r.reason, r.status, r.detail, r.remote,
       r.at, m.key, m.value, w.id, w.host, w.pid, w.started_at, w.heartbeat_at,
       t.id, t.destination, t.event_id, t.input, t.event_type, t.script, t.job_id, t.url, t.payload,
       t.http_status, t.outcome, t.detail, t.job_state, t.job_checks, t.job_checked_at, t.job_completed_at,
       t.job_duration_ms, t.job_excerpt, t.created_at, s.event_id, s.terms, q.event_id
FROM events e, deliveries d, attempts a, rejections r, meta m, workers w, test_deliveries t, event_search s,
     search_pending q, event_keys_pending k, alive v, reconciled c
WHERE 1 = 0;

-- name: deployment_id
SELECT value AS deployment_id FROM meta WHERE key = 'deployment_id';

-- name: table_counts
-- Rows per table: what `headrace backup` and `headrace db copy` report and check.
SELECT (SELECT COUNT(*) FROM events) AS events, (SELECT COUNT(*) FROM deliveries) AS deliveries,
       (SELECT COUNT(*) FROM attempts) AS attempts, (SELECT COUNT(*) FROM rejections) AS rejections,
       (SELECT COUNT(*) FROM deliveries WHERE job_state IS NOT NULL) AS job_outcomes,
       (SELECT COUNT(*) FROM test_deliveries) AS test_deliveries;

-- The queries of `headrace db copy`: every row of every table, ids kept, in id order.

-- name: export_events
SELECT id, source, webhook_id, event_type, webhook_timestamp, received_at, body, headers, event_key, origin,
       duplicate_of, note, unrouted
FROM events WHERE id > %(after_id)s ORDER BY id LIMIT %(limit)s;

-- name: import_events
INSERT INTO events (id, source, webhook_id, event_type, webhook_timestamp, received_at, body, headers, event_key,
                    origin, duplicate_of, note, unrouted)
VALUES (%(id)s, %(source)s, %(webhook_id)s, %(event_type)s, %(webhook_timestamp)s, %(received_at)s, %(body)s,
        %(headers)s, %(event_key)s, %(origin)s, %(duplicate_of)s, %(note)s, %(unrouted)s);

-- name: export_deliveries
SELECT id, event_id, destination, generation, job_id, status, attempts, next_attempt_at, lease_owner, lease_until,
       last_error, windmill_job_id, payload, created_at, updated_at, job_state, job_created_at,
       job_next_check_at, job_checks, job_completed_at, job_duration_ms, job_excerpt, job_reruns
FROM deliveries WHERE id > %(after_id)s ORDER BY id LIMIT %(limit)s;

-- name: import_deliveries
INSERT INTO deliveries (id, event_id, destination, generation, job_id, status, attempts, next_attempt_at, lease_owner, lease_until,
    last_error, windmill_job_id, payload, created_at, updated_at, job_state, job_created_at, job_next_check_at,
    job_checks, job_completed_at, job_duration_ms, job_excerpt, job_reruns)
VALUES (%(id)s, %(event_id)s, %(destination)s, %(generation)s, %(job_id)s, %(status)s, %(attempts)s,
        %(next_attempt_at)s, %(lease_owner)s, %(lease_until)s, %(last_error)s, %(windmill_job_id)s,
        %(payload)s, %(created_at)s, %(updated_at)s, %(job_state)s, %(job_created_at)s,
        %(job_next_check_at)s, %(job_checks)s, %(job_completed_at)s, %(job_duration_ms)s, %(job_excerpt)s,
        %(job_reruns)s);

-- name: export_attempts
SELECT id, delivery_id, number, started_at, duration_ms, http_status, outcome, detail, response_excerpt, notes
FROM attempts WHERE id > %(after_id)s ORDER BY id LIMIT %(limit)s;

-- name: import_attempts
INSERT INTO attempts (id, delivery_id, number, started_at, duration_ms, http_status, outcome, detail, response_excerpt, notes)
VALUES (%(id)s, %(delivery_id)s, %(number)s, %(started_at)s, %(duration_ms)s, %(http_status)s, %(outcome)s,
        %(detail)s, %(response_excerpt)s, %(notes)s);

-- name: export_rejections
SELECT id, source, reason, status, detail, remote, at
FROM rejections WHERE id > %(after_id)s ORDER BY id LIMIT %(limit)s;

-- name: import_rejections
INSERT INTO rejections (id, source, reason, status, detail, remote, at)
VALUES (%(id)s, %(source)s, %(reason)s, %(status)s, %(detail)s, %(remote)s, %(at)s);

-- name: export_test_deliveries
SELECT id, destination, event_id, input, event_type, script, job_id, url, payload, http_status, outcome,
       detail, job_state, job_checks, job_checked_at, job_completed_at, job_duration_ms, job_excerpt,
       created_at
FROM test_deliveries WHERE id > %(after_id)s ORDER BY id LIMIT %(limit)s;

-- name: import_test_deliveries
INSERT INTO test_deliveries (id, destination, event_id, input, event_type, script, job_id, url, payload,
       http_status, outcome, detail, job_state, job_checks, job_checked_at, job_completed_at, job_duration_ms,
       job_excerpt, created_at)
VALUES (%(id)s, %(destination)s, %(event_id)s, %(input)s, %(event_type)s, %(script)s, %(job_id)s, %(url)s,
       %(payload)s, %(http_status)s, %(outcome)s, %(detail)s, %(job_state)s, %(job_checks)s,
       %(job_checked_at)s, %(job_completed_at)s, %(job_duration_ms)s, %(job_excerpt)s, %(created_at)s);

-- name: set_deployment_id
UPDATE meta SET value = %(deployment_id)s WHERE key = 'deployment_id';

-- name: reset_ids
-- Rows copied with their ids leave the identity sequences at 1: move each past its table's MAX(id),
-- or the next insert fails with `Key (id)=(1) already exists`.
SELECT setval(pg_get_serial_sequence('events', 'id'), COALESCE((SELECT MAX(id) FROM events), 0) + 1, false) AS events,
       setval(pg_get_serial_sequence('deliveries', 'id'), COALESCE((SELECT MAX(id) FROM deliveries), 0) + 1, false) AS deliveries,
       setval(pg_get_serial_sequence('attempts', 'id'), COALESCE((SELECT MAX(id) FROM attempts), 0) + 1, false) AS attempts,
       setval(pg_get_serial_sequence('rejections', 'id'), COALESCE((SELECT MAX(id) FROM rejections), 0) + 1, false) AS rejections,
       setval(pg_get_serial_sequence('test_deliveries', 'id'), COALESCE((SELECT MAX(id) FROM test_deliveries), 0) + 1,
              false) AS test_deliveries;

-- Test deliveries (the console's "Try a transformation" page): a table of their own, never an event's delivery.

-- name: insert_test_delivery
INSERT INTO test_deliveries (destination, event_id, input, event_type, script, job_id, url, payload, http_status,
                             outcome, detail, job_state, job_checked_at, created_at)
VALUES (%(destination)s, %(event_id)s, %(input)s, %(event_type)s, %(script)s, %(job_id)s, %(url)s, %(payload)s, %(http_status)s, %(outcome)s, %(detail)s, %(job_state)s, %(job_checked_at)s, %(created_at)s)
RETURNING id;

-- name: prune_test_deliveries
-- Keep the newest :keep tests: they are for trying things, not a record.
DELETE FROM test_deliveries
WHERE id <= (SELECT id FROM test_deliveries ORDER BY id DESC LIMIT 1 OFFSET %(keep)s);

-- name: get_test_delivery
SELECT id, destination, event_id, input, event_type, script, job_id, url, payload, http_status, outcome, detail,
       job_state, job_checks, job_checked_at, job_completed_at, job_duration_ms, job_excerpt, created_at
FROM test_deliveries WHERE id = %(id)s;

-- name: list_test_deliveries
SELECT id, destination, event_id, input, event_type, script, job_id, url, payload, http_status, outcome, detail,
       job_state, job_checks, job_checked_at, job_completed_at, job_duration_ms, job_excerpt, created_at
FROM test_deliveries
WHERE (%(event_id)s::bigint IS NULL OR event_id = %(event_id)s)
ORDER BY id DESC LIMIT %(limit)s;

-- name: record_test_job
-- One look at a test delivery's job; only while it is open, so a late answer never overwrites an outcome.
UPDATE test_deliveries
SET job_state = %(job_state)s, job_checks = job_checks + 1, job_checked_at = %(now)s,
    job_completed_at = %(job_completed_at)s, job_duration_ms = %(job_duration_ms)s, job_excerpt = %(job_excerpt)s
WHERE id = %(id)s AND job_state = 'open';


-- Retention (programs.prune_events): the next events received before the cutoff, oldest first, walked on
-- events_received_at from where the previous batch stopped; then their deliveries; then what is deleted.

-- name: prune_candidates
-- FOR UPDATE: a replay or a job re-run inserting a delivery for one of these events (its foreign key check
-- locks the event row) waits for this batch to end, so no delivery is added to an event being deleted.
SELECT id, received_at FROM events
WHERE received_at < %(cutoff)s AND (received_at, id) > (%(after_at)s::double precision, %(after_id)s::bigint)
ORDER BY received_at, id
LIMIT %(limit)s
FOR UPDATE;

-- name: prune_candidate_deliveries
SELECT event_id, destination, generation, status, job_state, updated_at
FROM deliveries WHERE event_id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb)::bigint);

-- name: prune_attempts
DELETE FROM attempts WHERE delivery_id IN (
    SELECT id FROM deliveries WHERE event_id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb)::bigint)
);

-- name: prune_deliveries
DELETE FROM deliveries WHERE event_id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb)::bigint);

-- name: prune_events
DELETE FROM events WHERE id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb)::bigint);

-- name: prune_rejections
DELETE FROM rejections WHERE id IN (
    SELECT id FROM rejections WHERE at < %(cutoff)s ORDER BY at LIMIT %(limit)s
);

-- Payload search (headrace.search, migration 0006).

-- name: search_events
-- list_events driven by the search index (headrace.search renders `match`), newest first, with
-- list_events' status.
SELECT * FROM (
    SELECT e.id, e.source, e.webhook_id, e.event_type, e.webhook_timestamp, e.received_at, e.origin,
           (SELECT {{event_status}} FROM deliveries d WHERE d.event_id = e.id AND {{newest_generation}}) AS status
    FROM event_search s JOIN events e ON e.id = s.event_id
    WHERE s.terms @@ %(match)s::tsquery
      AND (%(before_id)s::bigint IS NULL OR s.event_id < %(before_id)s)
      AND (%(source)s::text IS NULL OR e.source = %(source)s)
      AND (%(origin)s::text IS NULL OR e.origin = %(origin)s)
      AND (%(type_exact)s::text IS NULL OR e.event_type = %(type_exact)s)
      AND (%(type_prefix)s::text IS NULL OR starts_with(e.event_type, %(type_prefix)s))
      AND (%(since)s::double precision IS NULL OR e.received_at >= %(since)s)
      AND (%(until)s::double precision IS NULL OR e.received_at < %(until)s)
    -- `+ 0`: not the primary key's order, so the GIN index finds the matches first. In key order the planner
    -- walks every row newest first, testing each (2.5 s for one payment id among 1 M events, bench/search.py).
    ORDER BY s.event_id + 0 DESC
) AS listed
WHERE (%(status)s::text IS NULL OR status = %(status)s)
LIMIT %(limit)s;

-- name: claim_pending_search
-- The newest `limit` events queued for the search index (migration 0009), taken off the queue in the
-- indexer's transaction: should it fail, they are back. Newest first: after a burst, or while a whole
-- database is re-indexed, what just arrived is searchable first. SKIP LOCKED: another instance's indexer,
-- at the same moment, takes the next ids instead of waiting for these or computing their terms twice.
DELETE FROM search_pending
WHERE event_id IN (
    SELECT event_id FROM search_pending ORDER BY event_id DESC LIMIT %(limit)s FOR UPDATE SKIP LOCKED
)
RETURNING event_id;

-- name: events_for_index
-- What the terms of these events (a JSON array of ids) are made of; an event gone since is not there.
SELECT id, webhook_id, body FROM events WHERE id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb)::bigint);

-- name: index_event
-- An event's tsvector row (headrace.search.tsvector text), in place of the one it had (re-indexed after a
-- change of rules, migration 0010), unless the event is gone.
INSERT INTO event_search (event_id, terms)
SELECT id, %(terms)s::tsvector FROM events WHERE id = %(event_id)s
ON CONFLICT (event_id) DO UPDATE SET terms = EXCLUDED.terms;

-- name: count_pending_search
-- Counted up to `cap` (models.SEARCH_PENDING_CAP), so a scrape stays cheap while millions of events wait
-- (after an upgrade that re-indexes them all).
SELECT COUNT(*) AS n FROM (SELECT 1 FROM search_pending LIMIT %(cap)s) AS capped;

-- name: search_backlog
-- FOR UPDATE: instances that start together index the backlog one batch at a time, never the same events.
SELECT value::bigint AS upto FROM meta WHERE key = 'search_backlog' FOR UPDATE;

-- name: events_to_index
SELECT id, webhook_id, body FROM events WHERE id <= %(upto)s ORDER BY id DESC LIMIT %(limit)s;

-- name: set_search_backlog
UPDATE meta SET value = %(upto)s::text WHERE key = 'search_backlog';

-- Event keys, origins and the alive record (headrace reconcile; migration 0011).

-- name: find_key_twin
-- A stored event of any origin with this key (reconcile stores nothing for a key headrace has).
SELECT id FROM events WHERE source = %(source)s AND event_key = %(event_key)s ORDER BY id LIMIT 1;

-- name: find_reconciled_twin
-- A synthesized event with this key stored at or after :occurred_at: the real one is a late copy of it
-- (models.may_be_late_copy states the rule).
SELECT id FROM events
WHERE source = %(source)s AND event_key = %(event_key)s AND origin = 'reconcile' AND received_at >= %(occurred_at)s
ORDER BY id LIMIT 1;

-- name: stored_keys
-- Which of these keys (a JSON array) a source has stored events for.
SELECT DISTINCT event_key FROM events
WHERE source = %(source)s AND event_key IN (SELECT jsonb_array_elements_text(%(keys)s::jsonb));

-- name: keys_pending
-- Events stored before event keys (migration), oldest first, with their bodies (NULL: pruned since).
SELECT q.event_id, e.body FROM event_keys_pending q LEFT JOIN events e ON e.id = q.event_id
ORDER BY q.event_id LIMIT %(limit)s;

-- name: set_event_key
UPDATE events SET event_key = %(event_key)s WHERE id = %(event_id)s AND event_key IS NULL;

-- name: dequeue_event_keys
DELETE FROM event_keys_pending WHERE event_id IN (SELECT jsonb_array_elements_text(%(ids)s::jsonb)::bigint);

-- name: alive_forget
DELETE FROM alive WHERE last_at < %(before)s;

-- name: alive_start
INSERT INTO alive (instance, started_at, last_at) VALUES (%(instance)s, %(now)s, %(now)s) RETURNING id;

-- name: alive_beat
UPDATE alive SET last_at = %(now)s WHERE id = %(span_id)s AND last_at < %(now)s;

-- name: alive_spans
SELECT started_at, last_at FROM alive WHERE last_at >= %(since)s ORDER BY started_at, id;

-- name: refusal_hours
-- 401 refusals (a wrong signing secret) per source and hour since a time: the first and last of each hour.
SELECT source, MIN(at) AS first_at, MAX(at) AS last_at FROM rejections
WHERE status = 401 AND at >= %(since)s
GROUP BY source, floor(at / 3600)
ORDER BY source, first_at;

-- name: accepted_between
SELECT id FROM events
WHERE source = %(source)s AND origin = 'dodo' AND received_at > %(after)s AND received_at < %(before)s
LIMIT 1;

-- name: insert_reconciled
INSERT INTO reconciled (source, since, until, at) VALUES (%(source)s, %(since)s, %(until)s, %(at)s);

-- name: reconciled_windows
SELECT source, since, until FROM reconciled WHERE until >= %(since)s ORDER BY since, id;
