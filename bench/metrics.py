"""What /metrics costs: one scrape in microseconds, and the ingest rate with and without a scraper.

    .venv/bin/python bench/metrics.py [--events 10000] [--queue 20000] [--history 100000]
    .venv/bin/python bench/metrics.py --stored 1000000 [--dir /var/tmp/scale --keep]   # 3. only (~4 min to make)

1. scrape:   `App.metrics_text()` in process against a SQLite store holding `--history` finished
             deliveries and `--queue` open ones, with a realistic set of counter series. "cached" is a
             scrape within the gauge TTL (render only); "cold" also runs the store's gauge queries.
2. ingest:   `headrace serve` (worker off) at full speed, as bench/ingest.py measures it, without a
             scraper, then with one scraping /metrics every second, then every 100 ms. Printed as ratios
             against the run without a scraper, measured in the same run.
3. stored:   with `--stored N`: a cold scrape (gauge cache expired, so the store's gauge and readiness queries
             run) of `headrace serve`'s App against an empty store and against one of N stored events made
             by bench/scale.py's generator (every one still queued for the search index, as after an
             upgrade that re-indexes), as a ratio against the empty store in the same run: the median of
             scrapes with the database's pages in the OS cache, and the median of first scrapes of a newly
             opened store after they were dropped from it (posix_fadvise DONTNEED on the database file: a
             store larger than memory, or pages other work pushed out).
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

from headrace.app import App
from headrace.config import parse
from headrace.observe import metrics as metrics_module
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


def _evict(db: Path) -> None:
    """Drop the database file's pages from the OS page cache (this file only; dirty pages are kept)."""
    for suffix in ("", "-wal"):
        path = Path(f"{db}{suffix}")
        if path.exists():
            fd = os.open(path, os.O_RDONLY)
            try:
                os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            finally:
                os.close(fd)


def stored_scrape(db: Path, rounds: int = 20, evicted_rounds: int = 5) -> tuple[float, float]:
    """(median ms of cold scrapes, median ms of scrapes each right after the file left the page cache)."""
    settings = parse(
        f'[server]\ndatabase = "sqlite:///{db}"\nworker = false\n[sources.dodo]\nsecrets = ["{SECRET}"]\n',
        environ={},
        base_dir=db.parent,
    )

    async def scrape(app: App) -> float:
        app.metrics._gauges._at = app.metrics._ready._at = -1e9  # expired: the store's queries run
        started = time.perf_counter()
        await app.metrics_text()
        return (time.perf_counter() - started) * 1000

    async def main() -> tuple[float, float]:
        app = await App.open(settings)
        try:
            await scrape(app)
            warm = sorted([await scrape(app) for _ in range(rounds)])[rounds // 2]
        finally:
            await app.close()
        evicted = []
        for _ in range(evicted_rounds):  # a process started on a file that is not in memory: its first scrape
            _evict(db)
            app = await App.open(settings)
            try:
                await app.ready()  # opening reads the schema; readiness is asked apart from the gauges' queries
                _evict(db)
                evicted.append(await scrape(app))
            finally:
                await app.close()
        return warm, sorted(evicted)[evicted_rounds // 2]

    return asyncio.run(main())


def stored_run(size: int, folder: Path, keep: bool) -> None:
    from scale import database_for, remove

    made: list[Path] = []
    try:
        empty = database_for(folder, 0, made)
        stored = database_for(folder, size, made)
        (base_warm, base_cold), (warm, cold) = stored_scrape(empty), stored_scrape(stored)
    finally:
        if not keep:
            for db in made:
                remove(db)
    print(f"\ncold /metrics (gauges and readiness asked), {size:,} stored events vs an empty store, same run:")
    print(f"  pages cached  {warm:8.2f} ms  {warm / base_warm:6.1f}x empty ({base_warm:.2f} ms)")
    print(f"  pages evicted {cold:8.2f} ms  {cold / base_cold:6.1f}x empty ({base_cold:.2f} ms)")
    print(
        json.dumps(
            {
                "stored": size,
                "cached_ms": round(warm, 2),
                "evicted_ms": round(cold, 2),
                "empty_cached_ms": round(base_warm, 2),
                "empty_evicted_ms": round(base_cold, 2),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--queue", type=int, default=20000, help="open deliveries in the scrape benchmark's store")
    parser.add_argument("--history", type=int, default=100000, help="finished deliveries in that store")
    parser.add_argument("--stored", type=int, default=0, help="only the cold scrape at this many stored events")
    parser.add_argument("--dir", default=None, help="with --stored: where the generated databases go")
    parser.add_argument("--keep", action="store_true", help="with --stored: keep them for the next run")
    args = parser.parse_args()
    if args.stored:
        folder = Path(args.dir or tempfile.mkdtemp(prefix="headrace-metrics-"))
        folder.mkdir(parents=True, exist_ok=True)
        stored_run(args.stored, folder, args.keep)
        return
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
