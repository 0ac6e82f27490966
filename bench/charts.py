"""The console's chart queries read only their window: timed with and without a large history before it.

    .venv/bin/python bench/charts.py [--recent 20000] [--old 300000] [--runs 5]

Two SQLite databases hold the same `--recent` events of the last 5.5 hours (each delivered, with its attempt);
the second also holds `--old` events (with their deliveries and attempts) from the weeks before. Printed: the
median time of `app.charts.activity("6h")` (the events page's three charts) on each, and their ratio — about 1.0
when the queries are bounded by the window, about (recent + old) / recent if they scanned history — beside
the time of one full scan of the second database's events table (`SELECT COUNT(*)`), the bare baseline of
what reading all history costs.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from headrace.app import App
from headrace.config import parse
from headrace.store.sqlite import SQLiteStore

CONFIG = """
[server]
database = "sqlite:///{db}"
open_management = true
[sources.dodo]
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
[destinations.payments]
source = "dodo"
events = ["*"]
url = "http://127.0.0.1:9/api/w/acme/jobs/run/p/f/dodo/on_payment"
token = "t"
"""


def rows(first: int, count: int, start: float, spacing: float) -> dict[str, list[dict[str, Any]]]:
    events, deliveries, attempts = [], [], []
    for i in range(first, first + count):
        at = start + (i - first) * spacing
        events.append(
            {
                "id": i,
                "source": "dodo",
                "webhook_id": f"msg_{i}",
                "event_type": "payment.succeeded",
                "webhook_timestamp": int(at),
                "received_at": at,
                "body": b"{}",
                "headers": "{}",
            }
        )
        deliveries.append(
            {
                "id": i,
                "event_id": i,
                "destination": "payments",
                "generation": 0,
                "job_id": f"job-{i}",
                "status": "delivered",
                "attempts": 1,
                "next_attempt_at": None,
                "lease_owner": None,
                "lease_until": None,
                "last_error": "",
                "windmill_job_id": f"wm-{i}",
                "payload": None,
                "created_at": at,
                "updated_at": at + 0.2,
                "job_state": "success" if i % 50 else "failure",
                "job_created_at": at + 0.1,
                "job_next_check_at": None,
                "job_checks": 1,
                "job_completed_at": at + 2,
                "job_duration_ms": 1500.0,
                "job_excerpt": "",
                "job_reruns": 0,
            }
        )
        attempts.append(
            {
                "id": i,
                "delivery_id": i,
                "number": 1,
                "started_at": at + 0.05,
                "duration_ms": 40.0 + i % 200,
                "http_status": 201,
                "outcome": "delivered",
                "detail": "",
                "response_excerpt": "",
                "notes": "",
            }
        )
    return {"events": events, "deliveries": deliveries, "attempts": attempts}


async def build(path: Path, recent: int, old: int, now: float) -> None:
    store = SQLiteStore(path)
    await store.open()
    try:
        batches = []
        if old:
            batches.append((1, old, now - 40 * 86400, 30 * 86400 / old))  # 40 to 10 days ago
        batches.append((old + 1, recent, now - 5.5 * 3600, 5.5 * 3600 / recent))  # inside any 6 h window
        for first, count, start, spacing in batches:
            for offset in range(0, count, 20_000):
                part = rows(first + offset, min(20_000, count - offset), start + offset * spacing, spacing)
                for table in ("events", "deliveries", "attempts"):
                    await store.import_rows(table, part[table])
    finally:
        await store.close()


async def timed(path: Path, runs: int) -> tuple[float, int]:
    settings = parse(CONFIG.format(db=path), environ={}, base_dir=path.parent)
    store = SQLiteStore(path)
    await store.open()
    app = App(settings, store)
    try:
        times, events = [], 0
        for _ in range(runs):
            began = time.perf_counter()
            activity = await app.charts.activity("6h")
            times.append(time.perf_counter() - began)
            events = sum(sum(c.values()) for c in activity.outcomes.values())
        return statistics.median(times), events
    finally:
        await store.close()


def full_scan(path: Path) -> float:
    conn = sqlite3.connect(path)
    try:
        began = time.perf_counter()
        conn.execute("SELECT COUNT(*), SUM(length(body)) FROM events").fetchone()
        return time.perf_counter() - began
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recent", type=int, default=20_000)
    parser.add_argument("--old", type=int, default=300_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    now = time.time()
    with tempfile.TemporaryDirectory() as tmp:
        small, large = Path(tmp) / "recent.db", Path(tmp) / "history.db"
        asyncio.run(build(small, args.recent, 0, now))
        asyncio.run(build(large, args.recent, args.old, now))
        alone, seen_small = asyncio.run(timed(small, args.runs))
        with_history, seen_large = asyncio.run(timed(large, args.runs))
        scan = full_scan(large)
    assert seen_small == seen_large == args.recent, (seen_small, seen_large)
    print(f"ratio with/without {args.old} older events: {with_history / alone:.2f} (1.0 = bounded by the window)")
    print(f"charts, {args.recent} events in the window only: {alone * 1000:.1f} ms (median of {args.runs})")
    print(f"charts, plus {args.old} older events:           {with_history * 1000:.1f} ms")
    print(f"baseline: one full scan of the {args.recent + args.old} events: {scan * 1000:.1f} ms")


if __name__ == "__main__":
    main()
