"""What /metrics costs: one scrape in microseconds, and the ingest rate with and without a scraper.

    .venv/bin/python bench/metrics.py [--events 10000] [--queue 20000] [--history 100000]

1. scrape:   `App.metrics_text()` in process against a SQLite store holding `--history` finished
             deliveries and `--queue` open ones, with a realistic set of counter series. "cached" is a
             scrape within the gauge TTL (render only); "cold" also runs the store's gauge queries.
2. ingest:   `headrace serve` (worker off) at full speed, as bench/ingest.py measures it, without a
             scraper, then with one scraping /metrics every second, then every 100 ms. Printed as ratios
             against the run without a scraper, measured in the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import HEADRACE, free_port, fresh_db, signed_requests, start, stop, write_config
from loadgen import LoadResult, run_load

from headrace import metrics as metrics_module
from headrace.app import App
from headrace.config import parse
from headrace.store.sqlite import SQLiteStore

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def fill(db: Path, history: int, queue: int) -> None:
    """Rows straight into the tables (fast), shaped like a store after a busy week."""
    asyncio.run(_migrate(db))
    conn = sqlite3.connect(db)
    now = time.time()
    with conn:
        conn.executemany(
            "INSERT INTO events (id, source, webhook_id, event_type, webhook_timestamp, received_at, body, headers) "
            "VALUES (?, 'dodo', ?, 'payment.succeeded', 0, ?, x'7b7d', '{}')",
            ((i, f"msg_{i}", now - 3600) for i in range(1, history + queue + 1)),
        )
        conn.executemany(
            "INSERT INTO deliveries (event_id, destination, generation, job_id, status, attempts, created_at, "
            "updated_at, job_state) VALUES (?, ?, 0, ?, ?, 1, ?, ?, ?)",
            (
                (
                    i,
                    f"dest{i % 4}",
                    f"job-{i}",
                    "delivered" if i <= history else "pending",
                    now - 3600,
                    now - 3600,
                    ("success" if i % 50 else "failure") if i <= history else None,
                )
                for i in range(1, history + queue + 1)
            ),
        )
    conn.close()


async def _migrate(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    await store.close()


def scrape_cost(folder: Path, history: int, queue: int, rounds: int = 2000) -> tuple[float, float, int]:
    db = folder / "scrape.db"
    fill(db, history, queue)
    settings = parse(
        f'[server]\ndatabase = "sqlite:///{db}"\n[sources.dodo]\nsecrets = ["{SECRET}"]\n', environ={}, base_dir=folder
    )

    async def main() -> tuple[float, float, int]:
        app = await App.open(settings)
        try:
            m = app.metrics
            for d in range(4):
                for outcome in ("delivered", "failed", "cancelled"):
                    m.inc("headrace_deliveries_total", f"dest{d}", outcome)
                for i in range(1000):
                    m.observe_attempt(f"dest{d}", i / 1000)
                m.inc("headrace_jobs_total", f"dest{d}", "success")
            for reason in ("bad_signature", "timestamp_out_of_tolerance", "invalid_json", "body_too_large"):
                m.inc("headrace_events_rejected_total", "dodo", reason)
            text = await app.metrics_text()
            started = time.perf_counter()
            for _ in range(rounds):
                await app.metrics_text()
            cached = (time.perf_counter() - started) / rounds * 1e6
            cold_rounds = 50
            started = time.perf_counter()
            for _ in range(cold_rounds):
                m._gauges_at = -1e9  # expire the cache: every scrape runs the gauge queries
                await app.metrics_text()
            cold = (time.perf_counter() - started) / cold_rounds * 1e6
            return cached, cold, len(text)
        finally:
            await app.close()

    return asyncio.run(main())


class Scraper(threading.Thread):
    def __init__(self, url: str, interval: float) -> None:
        super().__init__(daemon=True)
        self.url, self.interval = url, interval
        self.done = threading.Event()
        self.count = 0
        self.errors = 0

    def run(self) -> None:
        while not self.done.wait(self.interval):
            try:
                with urllib.request.urlopen(self.url, timeout=10) as response:
                    response.read()
                self.count += 1
            except OSError:
                self.errors += 1


def ingest_with_scraper(folder: Path, n: int, c: int, interval: float | None) -> tuple[LoadResult, int]:
    fresh_db(folder)
    port = free_port()
    config = write_config(folder, port, free_port(), worker=False)
    server = start([*HEADRACE, "serve", "-c", str(config)], port)
    scraper = Scraper(f"http://127.0.0.1:{port}/metrics", interval) if interval else None
    try:
        run_load("127.0.0.1", port, signed_requests(port, 2000, "warm"), c)
        if scraper:
            scraper.start()
        result = run_load("127.0.0.1", port, signed_requests(port, n, "load"), c)
    finally:
        if scraper:
            scraper.done.set()
            scraper.join(5)
        stop(server)
    return result, scraper.count if scraper else 0


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--queue", type=int, default=20000, help="open deliveries in the scrape benchmark's store")
    parser.add_argument("--history", type=int, default=100000, help="finished deliveries in that store")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; gauge TTL {metrics_module.GAUGE_TTL:g} s\n")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cached, cold, size = scrape_cost(folder, args.history, args.queue)
        print(
            f"scrape   cached {cached:8.1f} us   cold (gauge queries) {cold:8.1f} us   "
            f"{size} bytes; store: {args.history} finished + {args.queue} open deliveries"
        )
        print(f"         a 1/s scraper costs at most {(cold + cached) / 1e4:.3f} % of one core\n")
        base, _ = ingest_with_scraper(folder, args.events, args.concurrency, None)
        rows = [("none", base, 0)]
        for label, interval in (("1/s", 1.0), ("10/s", 0.1)):
            result, scrapes = ingest_with_scraper(folder, args.events, args.concurrency, interval)
            rows.append((label, result, scrapes))
        for label, result, scrapes in rows:
            print(
                f"ingest   scraper {label:5} {result.rate:8.0f} req/s  p99 {result.percentile(99):6.2f} ms  "
                f"{result.rate / base.rate:5.2f}x no scraper  ({scrapes} scrapes)"
            )
    print(json.dumps({"scrape_cached_us": round(cached, 1), "scrape_cold_us": round(cold, 1)}))


if __name__ == "__main__":
    main()
