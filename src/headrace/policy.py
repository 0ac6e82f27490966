"""Policy as data: the numbers that decide how much headrace keeps, how it spreads retries and when a worker
counts as dead, each written once here and imported where it is used. Plain values, no I/O, no headrace import.
"""

from __future__ import annotations

# How much of a text is kept (characters): what Windmill answered to a run (an attempt's response excerpt, its
# detail and notes), an error line stored as a delivery's last error, a job's result or error, an answer (of
# Windmill or Dodo) quoted inside an error message, and the first line of one.
RESPONSE_EXCERPT = 2000
JOB_EXCERPT = 1000
ERROR_EXCERPT = 500
QUOTE_EXCERPT = 300
LINE_EXCERPT = 200

# Retries: each step of a destination's retry_schedule is stretched or shrunk by up to this fraction (with a
# server's Retry-After, only stretched: deliver/schedule.py).
JITTER = 0.1

# Workers (deliver/heartbeat.py): a beat every HEARTBEAT_INTERVAL seconds; a worker whose last beat is DEAD_AFTER
# seconds old is dead and its work is taken over. A claim's lease adds LEASE_MARGIN seconds to the attempts it
# covers (deliver/worker.py lease_for); a live worker's beats renew it besides.
HEARTBEAT_INTERVAL = 1.0
DEAD_AFTER = 5.0
LEASE_MARGIN = 5.0

# SQLite's write-ahead log (bytes): past this the store refuses new webhooks (store/sqlite.py GROWING). The
# default of [server] wal_limit.
WAL_LIMIT = 1024 * 1024 * 1024
