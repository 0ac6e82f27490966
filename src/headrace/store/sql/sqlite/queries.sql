-- Named queries for the SQLite store. One block per query, introduced by `-- name: NAME`.
-- The PostgreSQL dialect defines the same names (a test checks).

-- name: insert_event
INSERT INTO events (source, webhook_id, event_type, webhook_timestamp, received_at, body, headers,
                    event_key, origin, duplicate_of, note)
VALUES (:source, :webhook_id, :event_type, :webhook_timestamp, :received_at, :body, :headers,
        :event_key, :origin, :duplicate_of, :note)
ON CONFLICT (source, webhook_id) DO NOTHING
RETURNING id;

-- name: find_event_id
SELECT id FROM events WHERE source = :source AND webhook_id = :webhook_id;

-- name: insert_delivery
INSERT INTO deliveries (event_id, destination, generation, job_id, status, next_attempt_at, created_at, updated_at)
VALUES (:event_id, :destination, :generation, :job_id, 'pending', :now, :now, :now)
ON CONFLICT (event_id, destination, generation) DO NOTHING;

-- name: insert_rerun
INSERT INTO deliveries (event_id, destination, generation, job_id, status, next_attempt_at, created_at, updated_at,
                        job_reruns)
VALUES (:event_id, :destination, :generation, :job_id, 'pending', :now, :now, :now, :job_reruns)
ON CONFLICT (event_id, destination, generation) DO NOTHING;

-- name: claim_due
-- Each arm reads its own partial index in order and stops at :limit, so a backlog of due deliveries costs
-- :limit rows per claim, not a sort of the whole backlog.
UPDATE deliveries
SET status = 'in_flight', lease_owner = :token, lease_until = :lease_until, updated_at = :now
WHERE id IN (
    SELECT id FROM (
        SELECT id, next_attempt_at FROM (
            SELECT id, next_attempt_at FROM deliveries
            WHERE destination = :destination AND status = 'pending' AND next_attempt_at <= :now
            ORDER BY next_attempt_at, id LIMIT :limit)
        UNION ALL
        SELECT id, next_attempt_at FROM (
            SELECT id, next_attempt_at FROM deliveries
            WHERE destination = :destination AND status = 'in_flight' AND lease_until < :now
            ORDER BY lease_until LIMIT :limit)
    )
    ORDER BY next_attempt_at, id
    LIMIT :limit
);

-- name: claimed_by
SELECT d.id, d.event_id, d.destination, d.generation, d.job_id, d.attempts,
       e.source, e.webhook_id, e.event_type, e.body, e.origin
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.lease_owner = :token AND d.status = 'in_flight'
ORDER BY d.id;

-- name: finish_delivery
UPDATE deliveries
SET status = :status, attempts = attempts + 1, next_attempt_at = :next_attempt_at,
    last_error = :last_error, windmill_job_id = COALESCE(:windmill_job_id, windmill_job_id),
    payload = COALESCE(:payload, payload), lease_owner = NULL, lease_until = NULL, updated_at = :now,
    job_state = COALESCE(:job_state, job_state), job_created_at = COALESCE(:job_created_at, job_created_at),
    job_next_check_at = :job_next_check_at, job_completed_at = COALESCE(:job_completed_at, job_completed_at),
    job_duration_ms = COALESCE(:job_duration_ms, job_duration_ms), job_excerpt = COALESCE(:job_excerpt, job_excerpt)
WHERE id = :delivery_id AND lease_owner = :token AND status = 'in_flight';

-- name: insert_attempt
-- Right after finish_delivery in its transaction: the attempt's number is the count it just raised (read back here
-- rather than with RETURNING, which made SQLite's UPDATE ~5 us slower).
INSERT INTO attempts (delivery_id, number, started_at, duration_ms, http_status, outcome, detail, response_excerpt,
                      notes)
VALUES (:delivery_id, (SELECT attempts FROM deliveries WHERE id = :delivery_id), :started_at, :duration_ms,
        :http_status, :outcome, :detail, :response_excerpt, :notes);

-- name: release_delivery
UPDATE deliveries
SET status = 'pending', lease_owner = NULL, lease_until = NULL, next_attempt_at = :now, updated_at = :now
WHERE id = :delivery_id AND lease_owner = :token AND status = 'in_flight';

-- Worker processes and their heartbeats (deliver/heartbeat.py).

-- name: register_worker
INSERT INTO workers (id, host, pid, started_at, heartbeat_at) VALUES (:worker_id, :host, :pid, :now, :now);

-- name: beat_worker
UPDATE workers SET heartbeat_at = :now WHERE id = :worker_id;

-- name: worker_alive
-- Checked in the claim's transaction: a worker presumed dead (its row deleted) claims nothing more.
SELECT id FROM workers WHERE id = :worker_id;

-- name: dead_workers
SELECT id, heartbeat_at FROM workers WHERE heartbeat_at < :dead_before AND id <> :worker_id ORDER BY id;

-- name: release_worker_deliveries
-- Every delivery a worker holds: its lease tokens are the worker's id, '#', a number.
UPDATE deliveries
SET status = 'pending', lease_owner = NULL, lease_until = NULL, next_attempt_at = :now, updated_at = :now
WHERE status = 'in_flight' AND substr(lease_owner, 1, length(:prefix)) = :prefix;

-- name: renew_worker_leases
-- A live worker's beat: its deliveries in flight stay leased while it beats, however long an attempt takes (a slow
-- schema lookup, the sandbox's queue, the confirmation), so only a dead or silent worker's are claimed again.
UPDATE deliveries SET lease_until = :lease_until
WHERE status = 'in_flight' AND lease_until < :lease_until AND substr(lease_owner, 1, length(:prefix)) = :prefix;

-- name: release_worker_jobs
UPDATE deliveries
SET job_next_check_at = :now, job_lease_owner = NULL
WHERE job_state = 'open' AND job_lease_owner = :worker_id;

-- name: delete_worker
DELETE FROM workers WHERE id = :worker_id;

-- name: live_workers
SELECT COUNT(*) AS n FROM workers WHERE heartbeat_at >= :since;

-- name: next_due
SELECT MIN(next_attempt_at) AS due FROM deliveries WHERE status = 'pending';

-- name: insert_rejection
INSERT INTO rejections (source, reason, status, detail, remote, at)
VALUES (:source, :reason, :status, :detail, :remote, :at);

-- name: list_rejections
SELECT id, source, reason, status, detail, remote, at FROM rejections
WHERE (:since IS NULL OR at >= :since)
ORDER BY id DESC LIMIT :limit;

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
(:source IS NULL OR e.source = :source)
      AND (:origin IS NULL OR e.origin = :origin)
      AND (:type_exact IS NULL OR e.event_type = :type_exact)
      AND (:type_prefix IS NULL OR substr(e.event_type, 1, length(:type_prefix)) = :type_prefix)
      AND (:since IS NULL OR e.received_at >= :since)
      AND (:until IS NULL OR e.received_at < :until)
      AND (:before_id IS NULL OR e.id < :before_id)

-- name: list_events
SELECT * FROM (
    {{listed_event}}
    WHERE {{event_filters}}
    ORDER BY e.id DESC
) AS listed
WHERE (:status IS NULL OR status = :status)
LIMIT :limit;

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
WHERE (:status IS NULL OR status = :status)
LIMIT :limit;

-- name: list_events_unrouted
-- list_events for status unrouted: the events marked unrouted (no delivery at all), over events_unrouted.
-- list_events word for word plus the candidate filter (a test checks).
SELECT * FROM (
    {{listed_event}}
    WHERE e.unrouted = 1
      AND {{event_filters}}
    ORDER BY e.id DESC
) AS listed
WHERE (:status IS NULL OR status = :status)
LIMIT :limit;

-- name: mark_unrouted
-- Ingest stored the event with no route.
UPDATE events SET unrouted = 1 WHERE id = :event_id;

-- name: mark_routed
-- A replay gave the event a delivery: it is no longer unrouted.
UPDATE events SET unrouted = NULL WHERE id = :event_id AND unrouted = 1;

-- name: list_events_attention
-- list_events for a status in models.ATTENTION_STATUSES: only events with an open or failed delivery or a
-- failed job can have one, and deliveries_attention lists exactly those, so history is not read. The query
-- is list_events' own, word for word (a test checks); the candidates are narrowed to the deliveries
-- the asked status needs (a failed one for failed, an open one for pending, a failed job for job_failed).
SELECT * FROM (
    {{listed_event}}
    WHERE e.id IN (SELECT event_id FROM deliveries
                   WHERE (status IN ('pending', 'in_flight', 'failed') OR job_state = 'failure')
                     AND CASE :status WHEN 'pending' THEN status IN ('pending', 'in_flight')
                                   WHEN 'failed' THEN status = 'failed'
                                   ELSE job_state = 'failure' END)
      AND {{event_filters}}
    ORDER BY e.id DESC
) AS listed
WHERE (:status IS NULL OR status = :status)
LIMIT :limit;

-- name: get_event
SELECT id, source, webhook_id, event_type, webhook_timestamp, received_at, body, headers, event_key, origin,
       duplicate_of, note
FROM events WHERE id = :event_id;

-- name: get_event_by_webhook_id
SELECT id FROM events WHERE webhook_id = :webhook_id ORDER BY id DESC LIMIT 1;

-- name: event_deliveries
SELECT id, destination, generation, job_id, status, attempts, next_attempt_at, last_error,
       windmill_job_id, payload, created_at, updated_at, job_state, job_created_at, job_checks,
       job_completed_at, job_duration_ms, job_excerpt, job_reruns
FROM deliveries WHERE event_id = :event_id ORDER BY destination, generation;

-- name: event_attempts
SELECT a.delivery_id, a.number, a.started_at, a.duration_ms, a.http_status, a.outcome, a.detail,
       a.response_excerpt, a.notes
FROM attempts a JOIN deliveries d ON d.id = a.delivery_id
WHERE d.event_id = :event_id ORDER BY a.delivery_id, a.number;

-- name: latest_generation
SELECT MAX(generation) AS generation FROM deliveries WHERE event_id = :event_id AND destination = :destination;

-- name: event_key
SELECT source, webhook_id, event_type FROM events WHERE id = :event_id;

-- name: delivery_mark
-- Bulk replay's watermark: the newest delivery id when a count begins.
SELECT MAX(id) AS id FROM deliveries;

-- name: replayed_since
-- Events counted by a bulk replay (ids up to :max_event_id) that got a new delivery after the watermark.
SELECT DISTINCT event_id FROM deliveries WHERE id > :mark AND event_id <= :max_event_id;

-- name: bulk_serialise
-- Bulk replay's lock: every chunk of every bulk replay rewrites this one row first, so on PostgreSQL two
-- chunks (of two instances too) run one after the other and the second sees what the first wrote.
INSERT INTO meta (key, value) VALUES ('bulk_replay_lock', :at)
ON CONFLICT (key) DO UPDATE SET value = excluded.value;

-- name: bulk_claim
-- A bulk replay confirmation is used once: the first replay of a token inserts its key, any other gets 0 rows.
INSERT INTO meta (key, value) VALUES (:key, :at) ON CONFLICT (key) DO NOTHING;

-- name: failed_since
SELECT d.event_id, d.destination
FROM deliveries d
WHERE d.status = 'failed' AND d.updated_at >= :since
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
UPDATE deliveries
SET job_next_check_at = :lease_until, job_lease_owner = :owner
WHERE id IN (
    SELECT id FROM deliveries
    WHERE job_state = 'open' AND job_next_check_at <= :now
    ORDER BY job_next_check_at
    LIMIT :limit
)
RETURNING id;

-- name: open_job
SELECT d.id, d.event_id, d.destination, d.generation, d.windmill_job_id, d.job_id, d.job_checks, d.job_created_at,
       d.job_reruns, e.source, e.webhook_id
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.id = :delivery_id AND d.job_state = 'open';

-- name: open_jobs
SELECT d.id, d.event_id, d.destination, d.generation, d.windmill_job_id, d.job_id, d.job_checks, d.job_created_at,
       d.job_reruns, e.source, e.webhook_id
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.id IN (SELECT value FROM json_each(:ids)) AND d.job_state = 'open'
ORDER BY d.id;

-- name: job_still_open
UPDATE deliveries
SET job_checks = job_checks + 1, job_next_check_at = :next_check_at, job_lease_owner = NULL
WHERE id = :delivery_id AND job_state = 'open';

-- name: job_done
UPDATE deliveries
SET job_state = :state, job_checks = job_checks + 1, job_next_check_at = NULL, job_completed_at = :completed_at,
    job_duration_ms = :duration_ms, job_excerpt = :excerpt, updated_at = :now, job_lease_owner = NULL
WHERE id = :delivery_id AND job_state = 'open';

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
        ORDER BY l.job_completed_at DESC LIMIT 1) AS last_id
FROM deliveries d
WHERE d.job_state = 'failure' AND d.job_completed_at >= :since
GROUP BY d.destination;

-- name: delivery_job
SELECT d.id, d.event_id, d.windmill_job_id, d.job_excerpt, d.job_completed_at, e.webhook_id, e.event_type
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.id = :delivery_id;

-- The console's charts: every query is bounded by a time window and reads it through an index
-- (events_received_at, deliveries_jobs_failed, deliveries_due); a test checks SQLite's plans.

-- name: chart_outcomes
-- Events received per bucket, by the event status of list_events (restricted to one destination's
-- deliveries when :destination is given, and then only events that have one).
-- MATERIALIZED: each event's status is computed once, not once per use of the column.
WITH bucketed AS MATERIALIZED (
    SELECT CAST((e.received_at - :since) / :step AS INTEGER) AS bucket,
           (SELECT {{event_status}} FROM deliveries d
            WHERE d.event_id = e.id AND (:destination IS NULL OR d.destination = :destination)
              AND {{newest_generation}}) AS status
    FROM events e
    WHERE e.received_at >= :since AND e.received_at < :until
)
SELECT bucket, status, COUNT(*) AS n FROM bucketed
WHERE :destination IS NULL OR status <> 'unrouted'
GROUP BY bucket, status;

-- name: chart_latencies
-- Seconds from a delivery's creation (the event's arrival, or the replay) to the end of its delivered
-- attempt, by the bucket the event was received in.
SELECT CAST((e.received_at - :since) / :step AS INTEGER) AS bucket,
       a.started_at + a.duration_ms / 1000.0 - d.created_at AS latency
FROM events e
JOIN deliveries d ON d.event_id = e.id
JOIN attempts a ON a.delivery_id = d.id
WHERE e.received_at >= :since AND e.received_at < :until
  AND a.outcome = 'delivered'
  AND (:destination IS NULL OR d.destination = :destination);

-- name: chart_job_failures
-- One destination's failed Windmill jobs per bucket of when they finished.
SELECT CAST((job_completed_at - :since) / :step AS INTEGER) AS bucket, COUNT(*) AS n
FROM deliveries
WHERE destination = :destination AND job_state = 'failure'
  AND job_completed_at >= :since AND job_completed_at < :until
GROUP BY bucket;

-- name: destination_delivery_errors
-- A destination's newest deliveries in one status (failed, or pending a retry) that carry an error.
SELECT d.id, d.event_id, d.generation, d.status, d.last_error AS error, d.updated_at AS at, e.webhook_id, e.event_type
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.destination = :destination AND d.status = :status AND d.last_error <> ''
  AND d.updated_at >= :since
ORDER BY d.updated_at DESC LIMIT :limit;

-- name: destination_job_errors
-- A destination's newest failed Windmill jobs.
SELECT d.id, d.event_id, d.generation, 'job_failed' AS status, d.job_excerpt AS error, d.job_completed_at AS at,
       e.webhook_id, e.event_type
FROM deliveries d JOIN events e ON e.id = d.event_id
WHERE d.destination = :destination AND d.job_state = 'failure' AND d.job_completed_at >= :since
ORDER BY d.job_completed_at DESC LIMIT :limit;

-- name: schema_version
SELECT user_version AS version FROM pragma_user_version();

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
       t.job_duration_ms, t.job_excerpt, t.created_at, s.terms, q.event_id
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
FROM events WHERE id > :after_id ORDER BY id LIMIT :limit;

-- name: import_events
INSERT INTO events (id, source, webhook_id, event_type, webhook_timestamp, received_at, body, headers, event_key,
                    origin, duplicate_of, note, unrouted)
VALUES (:id, :source, :webhook_id, :event_type, :webhook_timestamp, :received_at, :body, :headers, :event_key, :origin, :duplicate_of, :note,
        :unrouted);

-- name: export_deliveries
SELECT id, event_id, destination, generation, job_id, status, attempts, next_attempt_at, lease_owner, lease_until,
       last_error, windmill_job_id, payload, created_at, updated_at, job_state, job_created_at,
       job_next_check_at, job_checks, job_completed_at, job_duration_ms, job_excerpt, job_reruns
FROM deliveries WHERE id > :after_id ORDER BY id LIMIT :limit;

-- name: import_deliveries
INSERT INTO deliveries (id, event_id, destination, generation, job_id, status, attempts, next_attempt_at, lease_owner, lease_until,
    last_error, windmill_job_id, payload, created_at, updated_at, job_state, job_created_at, job_next_check_at,
    job_checks, job_completed_at, job_duration_ms, job_excerpt, job_reruns)
VALUES (:id, :event_id, :destination, :generation, :job_id, :status, :attempts, :next_attempt_at, :lease_owner,
        :lease_until, :last_error, :windmill_job_id, :payload, :created_at, :updated_at, :job_state,
        :job_created_at, :job_next_check_at, :job_checks, :job_completed_at, :job_duration_ms, :job_excerpt,
        :job_reruns);

-- name: export_attempts
SELECT id, delivery_id, number, started_at, duration_ms, http_status, outcome, detail, response_excerpt, notes
FROM attempts WHERE id > :after_id ORDER BY id LIMIT :limit;

-- name: import_attempts
INSERT INTO attempts (id, delivery_id, number, started_at, duration_ms, http_status, outcome, detail, response_excerpt, notes)
VALUES (:id, :delivery_id, :number, :started_at, :duration_ms, :http_status, :outcome, :detail, :response_excerpt,
        :notes);

-- name: export_rejections
SELECT id, source, reason, status, detail, remote, at
FROM rejections WHERE id > :after_id ORDER BY id LIMIT :limit;

-- name: import_rejections
INSERT INTO rejections (id, source, reason, status, detail, remote, at)
VALUES (:id, :source, :reason, :status, :detail, :remote, :at);

-- name: export_test_deliveries
SELECT id, destination, event_id, input, event_type, script, job_id, url, payload, http_status, outcome,
       detail, job_state, job_checks, job_checked_at, job_completed_at, job_duration_ms, job_excerpt,
       created_at
FROM test_deliveries WHERE id > :after_id ORDER BY id LIMIT :limit;

-- name: import_test_deliveries
INSERT INTO test_deliveries (id, destination, event_id, input, event_type, script, job_id, url, payload,
       http_status, outcome, detail, job_state, job_checks, job_checked_at, job_completed_at, job_duration_ms,
       job_excerpt, created_at)
VALUES (:id, :destination, :event_id, :input, :event_type, :script, :job_id, :url, :payload, :http_status,
       :outcome, :detail, :job_state, :job_checks, :job_checked_at, :job_completed_at, :job_duration_ms,
       :job_excerpt, :created_at);

-- name: set_deployment_id
UPDATE meta SET value = :deployment_id WHERE key = 'deployment_id';

-- name: reset_ids
-- Nothing to do: an INTEGER PRIMARY KEY continues from MAX(id) + 1 by itself.
SELECT 1 AS done;

-- Test deliveries (the console's "Try a transformation" page): a table of their own, never an event's delivery.

-- name: insert_test_delivery
INSERT INTO test_deliveries (destination, event_id, input, event_type, script, job_id, url, payload, http_status,
                             outcome, detail, job_state, job_checked_at, created_at)
VALUES (:destination, :event_id, :input, :event_type, :script, :job_id, :url, :payload, :http_status, :outcome, :detail, :job_state, :job_checked_at, :created_at)
RETURNING id;

-- name: prune_test_deliveries
-- Keep the newest :keep tests: they are for trying things, not a record.
DELETE FROM test_deliveries
WHERE id <= (SELECT id FROM test_deliveries ORDER BY id DESC LIMIT 1 OFFSET :keep);

-- name: get_test_delivery
SELECT id, destination, event_id, input, event_type, script, job_id, url, payload, http_status, outcome, detail,
       job_state, job_checks, job_checked_at, job_completed_at, job_duration_ms, job_excerpt, created_at
FROM test_deliveries WHERE id = :id;

-- name: list_test_deliveries
SELECT id, destination, event_id, input, event_type, script, job_id, url, payload, http_status, outcome, detail,
       job_state, job_checks, job_checked_at, job_completed_at, job_duration_ms, job_excerpt, created_at
FROM test_deliveries
WHERE (:event_id IS NULL OR event_id = :event_id)
ORDER BY id DESC LIMIT :limit;

-- name: record_test_job
-- One look at a test delivery's job; only while it is open, so a late answer never overwrites an outcome.
UPDATE test_deliveries
SET job_state = :job_state, job_checks = job_checks + 1, job_checked_at = :now,
    job_completed_at = :job_completed_at, job_duration_ms = :job_duration_ms, job_excerpt = :job_excerpt
WHERE id = :id AND job_state = 'open';


-- Retention (programs.prune_events): the next events received before the cutoff, oldest first, walked on
-- events_received_at from where the previous batch stopped; then their deliveries; then what is deleted.

-- name: prune_candidates
SELECT id, received_at FROM events
WHERE received_at < :cutoff AND (received_at, id) > (:after_at, :after_id)
ORDER BY received_at, id
LIMIT :limit;

-- name: prune_candidate_deliveries
SELECT event_id, destination, generation, status, job_state, updated_at
FROM deliveries WHERE event_id IN (SELECT value FROM json_each(:ids));

-- name: prune_attempts
DELETE FROM attempts WHERE delivery_id IN (
    SELECT id FROM deliveries WHERE event_id IN (SELECT value FROM json_each(:ids))
);

-- name: prune_deliveries
DELETE FROM deliveries WHERE event_id IN (SELECT value FROM json_each(:ids));

-- name: prune_events
DELETE FROM events WHERE id IN (SELECT value FROM json_each(:ids));

-- name: prune_rejections
DELETE FROM rejections WHERE id IN (
    SELECT id FROM rejections WHERE at < :cutoff ORDER BY at LIMIT :limit
);

-- Payload search (headrace.search, migration 0006).

-- name: search_events
-- list_events driven by the search index (headrace.search renders `match`), newest first, with
-- list_events' status.
SELECT * FROM (
    SELECT e.id, e.source, e.webhook_id, e.event_type, e.webhook_timestamp, e.received_at, e.origin,
           (SELECT {{event_status}} FROM deliveries d WHERE d.event_id = e.id AND {{newest_generation}}) AS status
    FROM event_search s JOIN events e ON e.id = s.rowid
    WHERE s.terms MATCH :match
      AND s.rowid < COALESCE(:before_id, 9223372036854775807)
      AND (:source IS NULL OR e.source = :source)
      AND (:origin IS NULL OR e.origin = :origin)
      AND (:type_exact IS NULL OR e.event_type = :type_exact)
      AND (:type_prefix IS NULL OR substr(e.event_type, 1, length(:type_prefix)) = :type_prefix)
      AND (:since IS NULL OR e.received_at >= :since)
      AND (:until IS NULL OR e.received_at < :until)
    ORDER BY s.rowid DESC
) AS listed
WHERE (:status IS NULL OR status = :status)
LIMIT :limit;

-- name: claim_pending_search
-- The newest `limit` events queued for the search index (migration 0008), taken off the queue in the
-- indexer's transaction: should it fail, they are back. Newest first: after a burst, or while a whole
-- database is re-indexed, what just arrived is searchable first.
DELETE FROM search_pending
WHERE event_id IN (SELECT event_id FROM search_pending ORDER BY event_id DESC LIMIT :limit)
RETURNING event_id;

-- name: events_for_index
-- What the terms of these events (a JSON array of ids) are made of; an event gone since is not there.
SELECT id, webhook_id, body FROM events WHERE id IN (SELECT value FROM json_each(:ids));

-- name: index_event
-- An event's FTS5 row, in place of the one it had (re-indexed after a change of rules, migration 0009). Only
-- for an event just read in the same write transaction (events_for_index, events_to_index): no other writer can
-- delete it meanwhile, so no existence check here (an INSERT ... SELECT ... WHERE EXISTS into FTS5 cost 2-4x).
INSERT OR REPLACE INTO event_search (rowid, terms) VALUES (:event_id, :terms);

-- name: count_pending_search
-- Counted up to `cap` (models.SEARCH_PENDING_CAP), so a scrape stays cheap while millions of events wait
-- (after an upgrade that re-indexes them all).
SELECT COUNT(*) AS n FROM (SELECT 1 FROM search_pending LIMIT :cap) AS capped;

-- name: search_backlog
-- Read in the write transaction (BEGIN IMMEDIATE): processes index the backlog one batch at a time.
SELECT CAST(value AS INTEGER) AS upto FROM meta WHERE key = 'search_backlog';

-- name: events_to_index
SELECT id, webhook_id, body FROM events WHERE id <= :upto ORDER BY id DESC LIMIT :limit;

-- name: set_search_backlog
UPDATE meta SET value = CAST(:upto AS TEXT) WHERE key = 'search_backlog';

-- Event keys, origins and the alive record (headrace reconcile; migration 0010).

-- name: find_key_twin
-- A stored event of any origin with this key (reconcile stores nothing for a key headrace has).
SELECT id FROM events WHERE source = :source AND event_key = :event_key ORDER BY id LIMIT 1;

-- name: find_reconciled_twin
-- A synthesized event with this key stored at or after :occurred_at: the real one is a late copy of it
-- (models.may_be_late_copy states the rule).
SELECT id FROM events
WHERE source = :source AND event_key = :event_key AND origin = 'reconcile' AND received_at >= :occurred_at
ORDER BY id LIMIT 1;

-- name: stored_keys
-- Which of these keys (a JSON array) a source has stored events for.
SELECT DISTINCT event_key FROM events
WHERE source = :source AND event_key IN (SELECT value FROM json_each(:keys));

-- name: keys_pending
-- Events stored before event keys (migration), oldest first, with their bodies (NULL: pruned since).
SELECT q.event_id, e.body FROM event_keys_pending q LEFT JOIN events e ON e.id = q.event_id
ORDER BY q.event_id LIMIT :limit;

-- name: set_event_key
UPDATE events SET event_key = :event_key WHERE id = :event_id AND event_key IS NULL;

-- name: dequeue_event_keys
DELETE FROM event_keys_pending WHERE event_id IN (SELECT value FROM json_each(:ids));

-- name: alive_forget
DELETE FROM alive WHERE last_at < :before;

-- name: alive_start
INSERT INTO alive (instance, started_at, last_at) VALUES (:instance, :now, :now) RETURNING id;

-- name: alive_beat
UPDATE alive SET last_at = :now WHERE id = :span_id AND last_at < :now;

-- name: alive_spans
SELECT started_at, last_at FROM alive WHERE last_at >= :since ORDER BY started_at, id;

-- name: refusal_hours
-- 401 refusals (a wrong signing secret) per source and hour since a time: the first and last of each hour.
SELECT source, MIN(at) AS first_at, MAX(at) AS last_at FROM rejections
WHERE status = 401 AND at >= :since
GROUP BY source, CAST(at / 3600 AS INTEGER)
ORDER BY source, first_at;

-- name: accepted_between
SELECT id FROM events
WHERE source = :source AND origin = 'dodo' AND received_at > :after AND received_at < :before
LIMIT 1;

-- name: insert_reconciled
INSERT INTO reconciled (source, since, until, at) VALUES (:source, :since, :until, :at);

-- name: reconciled_windows
SELECT source, since, until FROM reconciled WHERE until >= :since ORDER BY since, id;
