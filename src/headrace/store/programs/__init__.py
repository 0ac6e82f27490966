"""Every store operation's decisions, written once for every SQL dialect.

An operation is a *program*: a generator that yields `Step`s (run this named query with these parameters)
and receives each step's result, then returns the operation's answer. A backend only drives programs: it
runs each step's named query on its connection, inside one transaction per program, and sends the result
back (`sqlite.SQLiteStore` synchronously, `postgres.PostgresStore` with awaits). Guards, sorting, row-count
checks and the mapping of rows to models live here and in `rows`, so the two backends cannot disagree.

Step kinds: `one` -> the first row or None; `all` -> a list of rows; `run` -> the affected row count;
`many` -> the statement once per parameter set (no result). Rows are read by column name only.

steps.py holds the Step kinds, `Program` and the drivers; the programs themselves are grouped by what they
work on: deliveries.py (ingest, claim, finish), jobs.py, workers.py, events.py (listing, replay), search.py
(the search index queue and backlog),
monitoring.py (stats, charts), retention.py, health.py and copying.py. Import them from here:
`programs.ingest` is the same function everywhere (postgres.GROUPED compares by identity).
"""

from headrace.store.programs.copying import COPIED_TABLES, export_rows, finish_import, import_rows, table_counts
from headrace.store.programs.deliveries import claim, earliest, finish, ingest, reject, release
from headrace.store.programs.events import (
    delivery_mark,
    failed_since,
    get_event,
    list_events,
    list_rejections,
    replay,
    replay_counted,
    replayed_since,
    type_filter,
)
from headrace.store.programs.health import check_schema, check_writable
from headrace.store.programs.jobs import latest_generation, lease_due_jobs, record_job
from headrace.store.programs.monitoring import (
    activity,
    destination_errors,
    job_failures,
    percentile,
    queue_stats,
    stats,
)
from headrace.store.programs.reconcile import (
    accepted_between,
    alive_spans,
    beat_alive,
    key_backlog,
    reconciled_windows,
    record_reconciled,
    refusal_hours,
    start_alive,
    stored_keys,
)
from headrace.store.programs.retention import prune_events, prune_rejections
from headrace.store.programs.search import count_pending_search, index_backlog, index_pending
from headrace.store.programs.steps import Program, Step, StepKind, all_rows, drive, drive_async, many, one, run
from headrace.store.programs.workers import heartbeat, live_workers, register_worker, retire_worker

__all__ = [
    "COPIED_TABLES",
    "Program",
    "Step",
    "StepKind",
    "accepted_between",
    "activity",
    "alive_spans",
    "all_rows",
    "beat_alive",
    "check_schema",
    "check_writable",
    "claim",
    "count_pending_search",
    "delivery_mark",
    "destination_errors",
    "drive",
    "drive_async",
    "earliest",
    "export_rows",
    "failed_since",
    "finish",
    "finish_import",
    "get_event",
    "heartbeat",
    "import_rows",
    "index_backlog",
    "index_pending",
    "ingest",
    "job_failures",
    "key_backlog",
    "latest_generation",
    "lease_due_jobs",
    "list_events",
    "list_rejections",
    "live_workers",
    "many",
    "one",
    "percentile",
    "prune_events",
    "prune_rejections",
    "queue_stats",
    "reconciled_windows",
    "record_job",
    "record_reconciled",
    "refusal_hours",
    "register_worker",
    "reject",
    "release",
    "replay",
    "replay_counted",
    "replayed_since",
    "retire_worker",
    "run",
    "start_alive",
    "stats",
    "stored_keys",
    "table_counts",
    "type_filter",
]
