"""A /metrics scrape's store queries do the same work however much the store holds.

Work is counted in SQLite virtual-machine steps (a progress handler), not in time: the same on any machine.
The gauges of `queue_stats` read the open deliveries and jobs through partial indexes and count the search
queue up to a small cap, so neither finished history nor a large search backlog (a million events re-queued
by an upgrade, or stored faster than indexed) makes a scrape read more. Counting the queue up to 100,000 read
~200 scattered pages at a million stored events: 0.4-1.4 s on a cold page cache (bench/metrics.py --stored).
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from headrace.models import SEARCH_PENDING_CAP, QueueStats
from headrace.store.programs import drive, queue_stats
from headrace.store.programs.steps import Step
from headrace.store.queries import load
from headrace.store.sqlite_io import connect, migrate

STEP = 10  # VM instructions per progress-handler call


def _store(path: Path, *, finished: int, pending_search: int, open_deliveries: int = 5) -> sqlite3.Connection:
    """`finished` delivered events (history) and `open_deliveries` pending ones; the newest `pending_search`
    events still wait for the search index (the rest are taken off the queue, as the indexer would)."""
    conn = connect(path)
    migrate(conn, str(path))
    total = finished + open_deliveries
    conn.execute("BEGIN")
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "INSERT INTO events (id, source, webhook_id, event_type, webhook_timestamp, received_at, body, headers) "
        "SELECT i, 'dodo', 'msg_' || i, 'payment.succeeded', 1000, 1000 + i, x'7b7d', '{}' FROM n",
        (total,),
    )
    conn.execute(
        "INSERT INTO deliveries (event_id, destination, generation, job_id, status, attempts, next_attempt_at, "
        "created_at, updated_at, job_state) SELECT id, 'payments', 0, 'j' || id, "
        "CASE WHEN id <= ? THEN 'delivered' ELSE 'pending' END, 1, received_at, received_at, received_at, "
        "CASE WHEN id <= ? THEN 'success' END FROM events",
        (finished, finished),
    )
    conn.execute("DELETE FROM search_pending WHERE event_id <= ?", (total - pending_search,))
    conn.execute("COMMIT")
    return conn


def _scrape_work(conn: sqlite3.Connection) -> tuple[QueueStats, int]:
    q = load("sqlite")
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    def execute(step: Step) -> object:
        cursor = conn.execute(q[step.query], {} if step.params is None else step.params)
        return cursor.fetchone() if step.kind == "one" else cursor.fetchall()

    conn.set_progress_handler(count, STEP)
    try:
        stats = drive(queue_stats(), execute)
    finally:
        conn.set_progress_handler(None, STEP)
    return stats, steps


def test_a_search_backlog_past_the_cap_costs_a_scrape_no_more(tmp_path: Path):
    small = _store(tmp_path / "small.db", finished=30_000, pending_search=SEARCH_PENDING_CAP + 5)
    large = _store(tmp_path / "large.db", finished=30_000, pending_search=30_000)
    small_stats, small_work = _scrape_work(small)
    large_stats, large_work = _scrape_work(large)
    assert small_stats.search_pending == large_stats.search_pending == SEARCH_PENDING_CAP
    assert large_work <= small_work * 1.05, (small_work, large_work)
    # and the cap stays small: twice the HeadraceSearchIndexBehind threshold (1,000) is enough to alert on
    assert SEARCH_PENDING_CAP <= 2_000


def test_finished_history_costs_a_scrape_nothing(tmp_path: Path):
    empty = _store(tmp_path / "empty.db", finished=0, pending_search=0)
    full = _store(tmp_path / "full.db", finished=30_000, pending_search=0)
    empty_stats, empty_work = _scrape_work(empty)
    full_stats, full_work = _scrape_work(full)
    assert empty_stats.depth == full_stats.depth == {("payments", "pending"): 5}
    assert full_work <= empty_work * 1.05 + 2, (empty_work, full_work)
