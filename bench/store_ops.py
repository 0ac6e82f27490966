"""The store's own cost per operation, as a ratio against bare sqlite3 doing the same statements, same run.

    .venv/bin/python bench/store_ops.py [--events 20000] [--concurrency 64] [--rounds 3]

bare:   the same INSERTs (event + one delivery) with plain sqlite3 on one connection, WAL and
        synchronous=FULL, committed in batches of `--concurrency` (what group commit achieves at best).
store:  SQLiteStore.ingest with `--concurrency` concurrent callers (group commit, the programs of
        store/programs/ driven on the loop thread), each awaiting its own COMMIT.
reads:  SQLiteStore.get_event for every stored event, against bare sqlite3 running the same three queries.

Run it under two versions of the code (PYTHONPATH=old/src) to compare their ratios: the absolute numbers
move with the machine's load, the ratios much less.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from headrace.models import NewEvent
from headrace.store.queries import load
from headrace.store.sqlite import SQLiteStore


def event(n: int) -> NewEvent:
    body = json.dumps({"type": "payment.succeeded", "data": {"payment_id": f"pay_{n}", "amount": 100}}).encode()
    return NewEvent("dodo", f"msg_{n}", "payment.succeeded", 1000, 1000.0 + n, body, {"webhook-id": f"msg_{n}"})


def routes() -> Any:
    try:
        from headrace.models import Route

        return [Route("payments", "http://127.0.0.1:8000/api/w/bench")]
    except ImportError:  # code from before job ids had targets
        return ["payments"]


def bare_ingest(path: Path, n: int, batch: int) -> float:
    q = load("sqlite")
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA synchronous = FULL")
    conn.executescript(
        "CREATE TABLE events (id INTEGER PRIMARY KEY, source TEXT, webhook_id TEXT, event_type TEXT,"
        " webhook_timestamp INTEGER, received_at REAL, body BLOB, headers TEXT, event_key TEXT, origin TEXT,"
        " duplicate_of INTEGER, note TEXT, UNIQUE (source, webhook_id));"
        "CREATE TABLE deliveries (id INTEGER PRIMARY KEY, event_id INTEGER, destination TEXT, generation INTEGER,"
        " job_id TEXT, status TEXT, next_attempt_at REAL, created_at REAL, updated_at REAL,"
        " UNIQUE (event_id, destination, generation));"
    )
    started = time.perf_counter()
    for first in range(0, n, batch):
        conn.execute("BEGIN IMMEDIATE")
        for i in range(first, min(first + batch, n)):
            e = event(i)
            params = {
                "source": e.source,
                "webhook_id": e.webhook_id,
                "event_type": e.event_type,
                "webhook_timestamp": e.webhook_timestamp,
                "received_at": e.received_at,
                "body": e.body,
                "headers": json.dumps(e.headers),
                "event_key": None,
                "origin": "dodo",
                "duplicate_of": None,
                "note": "",
            }
            event_id = conn.execute(q["insert_event"], params).fetchone()[0]
            conn.execute(
                q["insert_delivery"],
                {"event_id": event_id, "destination": "payments", "generation": 0, "job_id": "j", "now": 1.0},
            )
        conn.execute("COMMIT")
    seconds = time.perf_counter() - started
    conn.close()
    return n / seconds


async def store_ingest(path: Path, n: int, concurrency: int) -> tuple[float, float]:
    store = SQLiteStore(path)
    await store.open()
    targets = routes()
    try:
        started = time.perf_counter()
        for first in range(0, n, concurrency):
            await asyncio.gather(*(store.ingest(event(i), targets) for i in range(first, min(first + concurrency, n))))
        ingest_rate = n / (time.perf_counter() - started)
        started = time.perf_counter()
        for first in range(1, n + 1, concurrency):
            await asyncio.gather(*(store.get_event(str(i)) for i in range(first, min(first + concurrency, n + 1))))
        read_rate = n / (time.perf_counter() - started)
        return ingest_rate, read_rate
    finally:
        await store.close()


def bare_reads(path: Path, n: int) -> float:
    q = load("sqlite")
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    started = time.perf_counter()
    for i in range(1, n + 1):
        conn.execute(q["get_event"], {"event_id": i}).fetchone()
        conn.execute(q["event_deliveries"], {"event_id": i}).fetchall()
        conn.execute(q["event_attempts"], {"event_id": i}).fetchall()
    seconds = time.perf_counter() - started
    conn.close()
    return n / seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ratios: dict[str, list[float]] = {"ingest": [], "reads": []}
    for round_number in range(args.rounds):
        with tempfile.TemporaryDirectory() as folder:
            bare = bare_ingest(Path(folder) / "bare.db", args.events, args.concurrency)
            ingest, reads = asyncio.run(store_ingest(Path(folder) / "store.db", args.events, args.concurrency))
            bare_read = bare_reads(Path(folder) / "store.db", args.events)
        ratios["ingest"].append(ingest / bare)
        ratios["reads"].append(reads / bare_read)
        print(
            f"round {round_number + 1}: ingest {ingest:8.0f}/s vs bare {bare:8.0f}/s = {ingest / bare:.2f}x;"
            f"  get_event {reads:7.0f}/s vs bare {bare_read:7.0f}/s = {reads / bare_read:.2f}x"
        )
    for name, values in ratios.items():
        print(f"{name}: median {sorted(values)[len(values) // 2]:.2f}x bare")


if __name__ == "__main__":
    main()
