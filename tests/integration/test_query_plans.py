"""The queries that run all the time read the open rows through partial indexes, never the history.

The idle worker's claim and next_due (once a second), the tracker's next_job_check, the console's counts and
`events --status failed`: each plan must name its index, on a database with much history, a few open rows
and fresh statistics (ANALYZE). Dropping an index, or a query that stops matching its index's WHERE, fails
here rather than as a slowdown at a few million events.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from headrace.store.queries import load
from headrace.store.sqlite_io import connect, migrate

HISTORY = 20_000  # delivered deliveries (one event each)
OPEN = 20  # pending, in flight, failed each

PARAMS: dict[str, Any] = {
    "destination": "a",
    "now": 5000.0,
    "limit": 8,
    "token": "t",
    "lease_until": 5100.0,
    "source": None,
    "origin": None,
    "event_key": "k",
    "occurred_at": 0.0,
    "type_exact": None,
    "type_prefix": None,
    "since": None,
    "until": None,
    "before_id": None,
    "status": "failed",
    "cutoff": 2000.0,
    "after_at": 0.0,
    "after_id": 0,
}

# Parameters one query needs other than PARAMS' (a NULL source would let PostgreSQL prove no row matches).
QUERY_PARAMS = {"find_reconciled_twin": {"source": "dodo"}}

# query -> the indexes its plan must use (all of them)
EXPECTED = {
    "claim_due": {"deliveries_pending_due", "deliveries_leased"},
    "next_due": {"deliveries_next_due"},
    "next_job_check": {"deliveries_jobs_open"},
    "list_events_attention": {"deliveries_attention"},
    "list_events_cancelled": {"deliveries_cancelled"},
    "list_events_unrouted": {"events_unrouted"},
    "open_delivery_counts": {"deliveries_open"},
    "failed_delivery_counts": {"deliveries_failed"},
    "prune_candidates": {"events_received_at"},
    "prune_rejections": {"rejections_at"},
    "find_reconciled_twin": {"events_reconciled_key"},  # every keyed webhook asks it: no row read while empty
}

PARTIAL = {
    "deliveries_pending_due",
    "deliveries_next_due",
    "deliveries_leased",
    "deliveries_failed",
    "deliveries_attention",
    "deliveries_open",
    "deliveries_jobs_open",
    "events_reconciled_key",
    "deliveries_cancelled",
    "events_unrouted",
}


def _fill_sqlite(path: Path) -> sqlite3.Connection:
    conn = connect(path)
    migrate(conn, str(path))
    conn.execute("BEGIN")
    conn.execute(
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
        "INSERT INTO events (id, source, webhook_id, event_type, webhook_timestamp, received_at, body, headers) "
        "SELECT i, 'dodo', 'msg_' || i, 'payment.succeeded', 1000, 1000 + i * 0.1, x'7b7d', '{}' FROM n",
        (HISTORY + 3 * OPEN,),
    )
    conn.execute(
        "INSERT INTO deliveries (event_id, destination, generation, job_id, status, attempts, next_attempt_at, "
        "lease_until, created_at, updated_at, job_state) "
        "SELECT id, CASE id % 3 WHEN 0 THEN 'a' WHEN 1 THEN 'b' ELSE 'c' END, 0, 'j' || id, "
        "CASE WHEN id <= ? THEN 'delivered' WHEN id <= ? THEN 'pending' WHEN id <= ? THEN 'in_flight' "
        "ELSE 'failed' END, 1, received_at, received_at + 60, received_at, received_at, "
        "CASE WHEN id <= ? THEN 'success' END FROM events",
        (HISTORY, HISTORY + OPEN, HISTORY + 2 * OPEN, HISTORY),
    )
    conn.execute("INSERT INTO rejections (source, reason, status, detail, remote, at) VALUES ('d', 'r', 1, '', '', 1)")
    conn.execute("COMMIT")
    conn.execute("ANALYZE")
    return conn


def test_sqlite_plans_use_the_partial_indexes(tmp_path: Path):
    conn = _fill_sqlite(tmp_path / "plans.db")
    queries = load("sqlite")
    for name, indexes in EXPECTED.items():
        params = PARAMS | QUERY_PARAMS.get(name, {})
        plan = [str(row[3]) for row in conn.execute("EXPLAIN QUERY PLAN " + queries[name], params)]
        text = "\n".join(plan)
        for index in indexes:
            assert f"INDEX {index}" in text, f"{name} does not use {index}:\n{text}"
        assert not any(line.startswith("SCAN deliveries") and "INDEX" not in line for line in plan), text
    conn.close()


@pytest.mark.postgres
def test_postgresql_plans_use_the_partial_indexes(pg_dsn: str):
    import asyncio

    import psycopg

    from headrace.store.postgres import PostgresStore

    async def migrated() -> None:
        store = PostgresStore(pg_dsn)
        await store.open()
        await store.close()

    asyncio.run(migrated())
    queries = load("postgresql")
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(
            "INSERT INTO events (id, source, webhook_id, event_type, webhook_timestamp, received_at, body, headers) "
            "SELECT i, 'dodo', 'msg_' || i, 'payment.succeeded', 1000, 1000 + i * 0.1, '\\x7b7d', '{}' "
            "FROM generate_series(1, %s) AS i",
            (HISTORY + 3 * OPEN,),
        )
        conn.execute(
            "INSERT INTO deliveries (event_id, destination, generation, job_id, status, attempts, next_attempt_at, "
            "lease_until, created_at, updated_at, job_state) "
            "SELECT id, CASE id %% 3 WHEN 0 THEN 'a' WHEN 1 THEN 'b' ELSE 'c' END, 0, 'j' || id, "
            "CASE WHEN id <= %s THEN 'delivered' WHEN id <= %s THEN 'pending' WHEN id <= %s THEN 'in_flight' "
            "ELSE 'failed' END, 1, received_at, received_at + 60, received_at, received_at, "
            "CASE WHEN id <= %s THEN 'success' END FROM events",
            (HISTORY, HISTORY + OPEN, HISTORY + 2 * OPEN, HISTORY),
        )
        conn.execute("ANALYZE")
        with conn.transaction():  # claim_due locks and updates: look at its plan, then roll back
            for name, indexes in EXPECTED.items():
                if name == "prune_rejections":
                    continue  # one row: a sequential scan is right there
                query = queries[name]
                params = PARAMS | QUERY_PARAMS.get(name, {})
                text = "\n".join(str(row[0]) for row in conn.execute("EXPLAIN " + query, params))
                # PostgreSQL may pick another index over open rows (it proves deliveries_attention's WHERE
                # covers pending and in-flight rows too): any of them will do, history never.
                assert indexes & PARTIAL or indexes <= {"events_received_at"}, name
                assert any(index in text for index in indexes | PARTIAL), f"{name} uses no open-rows index:\n{text}"
                assert "Seq Scan on deliveries" not in text and "Seq Scan on events" not in text, f"{name}:\n{text}"
            raise psycopg.Rollback()


def test_sqlite_connections_have_a_page_cache_and_a_mapping_sized_for_millions_of_events(tmp_path: Path):
    from headrace.store.sqlite_io import CACHE_KIB, MMAP_BYTES

    conn = connect(tmp_path / "pragmas.db")
    assert conn.execute("PRAGMA cache_size").fetchone()[0] == -CACHE_KIB == -32768
    assert conn.execute("PRAGMA mmap_size").fetchone()[0] == MMAP_BYTES == 256 * 1024 * 1024
    conn.close()
