"""The search indexer's round costs about what taking the queue and writing its rows costs, whatever its order.

Work is counted in SQLite virtual-machine steps (a progress handler, FTS5's own statements included), not in
time. The queue is taken newest first; FTS5 writes its pending terms out as a new segment whenever a rowid is
lower than the one before, so rows written in that order made a segment per event (2.5x the work of the same
rows written in rising order, and as many segments to merge later), and an INSERT ... SELECT ... WHERE EXISTS
into FTS5 cost more again than an INSERT ... VALUES.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from headrace import search
from headrace.dodo import samples
from headrace.store.programs import drive, index_pending
from headrace.store.programs.steps import Step
from headrace.store.queries import load
from headrace.store.sqlite_io import connect, migrate

EVENTS = 200
STEP = 100  # VM instructions per progress-handler call


def _store(path: Path) -> sqlite3.Connection:
    conn = connect(path)
    migrate(conn, str(path))
    body = json.dumps(samples.load("payment.succeeded")).encode()
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO events (source, webhook_id, event_type, webhook_timestamp, received_at, body, headers) "
        "VALUES ('dodo', ?, 'payment.succeeded', 0, 0, ?, '{}')",
        ((f"msg_{i}", body) for i in range(EVENTS)),
    )
    conn.execute("COMMIT")
    return conn


def _work(conn: sqlite3.Connection, write: object) -> int:
    steps = 0

    def count() -> int:
        nonlocal steps
        steps += 1
        return 0

    conn.set_progress_handler(count, STEP)
    try:
        conn.execute("BEGIN IMMEDIATE")
        write()  # type: ignore[operator]
        conn.execute("COMMIT")
    finally:
        conn.set_progress_handler(None, STEP)
    return steps


def test_a_round_costs_what_its_rows_cost_in_rising_order(tmp_path: Path):
    q = load("sqlite")
    conn = _store(tmp_path / "queue.db")

    def execute(step: Step) -> object:
        if step.kind == "many":
            conn.executemany(q[step.query], step.params)
            return None
        cursor = conn.execute(q[step.query], {} if step.params is None else step.params)
        return cursor.fetchone() if step.kind == "one" else cursor.fetchall()

    round_work = _work(conn, lambda: drive(index_pending(EVENTS, "sqlite"), execute))
    indexed = [(int(r[0]), str(r[1])) for r in conn.execute("SELECT rowid, terms FROM event_search ORDER BY rowid")]
    assert len(indexed) == EVENTS and conn.execute("SELECT COUNT(*) FROM search_pending").fetchone()[0] == 0

    # The least such a round can cost: take the queue, read the bodies, write the same terms in rising rowid order.
    plain = _store(tmp_path / "plain.db")

    def least_round() -> None:
        ids = [int(r[0]) for r in plain.execute("DELETE FROM search_pending RETURNING event_id")]
        plain.execute(f"SELECT id, webhook_id, body FROM events WHERE id IN ({','.join(map(str, ids))})").fetchall()
        plain.executemany("INSERT INTO event_search (rowid, terms) VALUES (?, ?)", indexed)

    least = _work(plain, least_round)
    body = plain.execute("SELECT body FROM events WHERE id = ?", (indexed[0][0],)).fetchone()[0]
    assert indexed[0][1] == search.indexed(search.document("msg_0", bytes(body)), "sqlite")
    assert round_work <= least * 1.6 + 10, (round_work, least)
