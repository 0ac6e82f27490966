"""What stored history costs: ingest, pages and queries at 0, 1 M (and 5 M) stored events, as ratios
against the same figures at 0 events measured in the same run; and ingest while retention prunes.

    .venv/bin/python bench/scale.py                                  # --sizes 0,1000000: ~7 min the first time
    .venv/bin/python bench/scale.py --sizes 0,1000000,5000000 --keep # ~33 GB on disk, kept for the next run
    # generating 1 M events took ~4 min on a loaded 2-core machine (~1 GB a minute): 5 M takes ~30 min once

Each size is a real SQLite file filled by bulk SQL (not through HTTP): delivered events with a Dodo body, the
delivered payload and one attempt each (~6.4 KB an event on disk), one event in 1,000 failed. Files are made
once in --dir and reused while they exist (--keep keeps them; without it they are deleted at the end); a file
made by an older headrace is migrated by `serve` (so an old-code run, then a new-code run, share one file).
At each size:
  ingest   `headrace serve` (worker off) taking --events signed webhooks from a loopback client
  api      GET /api/v1/events?limit=50, median of 20
  console  GET /console/, median of 20
  failed   `events --status failed` (the store's list_events as the CLI runs it), median of 3
  rare     the slower of `events --status unrouted` and `--status cancelled`, median of 3 each
  claim    the idle worker's queries (claim_due, rolled back, + next_due + next_job_check), median of 50
Then `--prune-size` old delivered events are made and ingest is measured with retention off and again while
`headrace serve` prunes them ([server] retention = "30d"), with how many rows went meanwhile.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from ingest import HEADRACE, SECRET, free_port, signed_requests, start, stop
from loadgen import LoadResult, run_load

import headrace
from headrace.dodo import samples
from headrace.models import EventFilter
from headrace.store.queries import load
from headrace.store.sqlite import SQLiteStore
from headrace.store.sqlite_file import marker_path

ROW_BYTES = 6500  # on disk per generated event (event, delivery with payload, attempt, indexes), measured
CHUNK = 100_000
DAY = 86400.0


def config(folder: Path, db: Path, port: int, extra: str = "") -> Path:
    path = folder / f"scale-{port}.toml"
    path.write_text(f"""
[server]
listen = "127.0.0.1:{port}"
database = "sqlite:///{db}"
worker = false
log_level = "warning"
open_management = true
{extra}

[sources.dodo]
secrets = ["{SECRET}"]

[destinations.payments]
source = "dodo"
events = ["payment.*"]
url = "http://127.0.0.1:9/api/w/bench/jobs/run/f/f/dodo/on_payment"
token = "dev-token"
""")
    return path


def schema_version() -> int:
    from headrace.store.schema import known_version

    return known_version("sqlite")


async def _create(db: Path) -> None:
    store = SQLiteStore(db)
    await store.open()
    await store.close()


def generate(db: Path, size: int, *, age: float = 0.0) -> float:
    """A database with `size` delivered events received up to `age` + size/2 seconds ago; returns seconds."""
    started = time.perf_counter()
    asyncio.run(_create(db))
    body = json.dumps(samples.load("payment.succeeded")).encode()
    headers = json.dumps(
        {"webhook-id": "x" * 28, "webhook-timestamp": "1700000000", "content-type": "application/json"}
    )
    # What builtin:payment sends on: a few hundred bytes of the body's fields.
    payload = json.dumps(
        {k: v for k, v in samples.load("payment.succeeded")["data"].items() if not isinstance(v, dict | list)}
    )
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("PRAGMA synchronous = OFF")
    now = time.time() - age
    for start_at in range(1, size + 1, CHUNK):
        end = min(size, start_at + CHUNK - 1)
        conn.execute("BEGIN")
        conn.execute(
            "WITH RECURSIVE n(i) AS (SELECT ? UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO events (id, source, webhook_id, event_type, webhook_timestamp, received_at, body, headers) "
            "SELECT i, 'dodo', 'msg_gen_' || i, 'payment.succeeded', 1700000000, ? - (? - i) * 0.5, ?, ? FROM n",
            (start_at, end, now, size, body, headers),
        )
        conn.execute(
            "INSERT INTO deliveries (id, event_id, destination, generation, job_id, status, attempts, "
            "next_attempt_at, last_error, windmill_job_id, payload, created_at, updated_at, job_state, "
            "job_created_at, job_checks, job_completed_at, job_duration_ms) "
            "SELECT id, id, 'payments', 0, printf('%08x-0000-4000-8000-%012x', id, id), "
            "CASE WHEN id % 1000 = 0 THEN 'failed' ELSE 'delivered' END, 1, NULL, "
            "CASE WHEN id % 1000 = 0 THEN 'HTTP 500 from Windmill' ELSE '' END, "
            "CASE WHEN id % 1000 = 0 THEN NULL ELSE printf('%08x-1111-4000-8000-%012x', id, id) END, "
            "?, received_at, received_at + 0.2, "
            "CASE WHEN id % 1000 = 0 THEN NULL ELSE 'success' END, received_at + 0.1, 2, received_at + 1.1, 950.0 "
            "FROM events WHERE id BETWEEN ? AND ?",
            (payload, start_at, end),
        )
        conn.execute(
            "INSERT INTO attempts (id, delivery_id, number, started_at, duration_ms, http_status, outcome, detail, "
            "response_excerpt) SELECT id, id, 1, created_at + 0.05, 12.5, "
            "CASE WHEN id % 1000 = 0 THEN 500 ELSE 201 END, "
            "CASE WHEN id % 1000 = 0 THEN 'failed' ELSE 'delivered' END, '', "
            "printf('%08x-1111-4000-8000-%012x', id, id) FROM deliveries WHERE id BETWEEN ? AND ?",
            (start_at, end),
        )
        conn.execute("COMMIT")
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    return time.perf_counter() - started


def file_version(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("PRAGMA user_version").fetchone()[0])
    finally:
        conn.close()


def stored_events(db: Path) -> int:
    conn = sqlite3.connect(db)
    try:
        return int(conn.execute("SELECT COALESCE(MAX(id), 0) FROM events").fetchone()[0])
    finally:
        conn.close()


def get_ms(url: str, runs: int) -> float:
    times = []
    for n in range(runs + 2):
        started = time.perf_counter()
        with urllib.request.urlopen(url, timeout=300) as response:
            response.read()
        if n >= 2:  # two warm-ups
            times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def failed_ms(db: Path, runs: int = 3, status: Any = "failed") -> float:
    async def main() -> float:
        store = SQLiteStore(db)
        await store.open(migrate=False)
        try:
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                await store.list_events(EventFilter(status=status, limit=50))
                times.append((time.perf_counter() - started) * 1000)
            return statistics.median(times)
        finally:
            await store.close()

    return asyncio.run(main())


def claim_ms(db: Path, runs: int = 50) -> float:
    """The idle worker's once-a-second queries, as their SQL costs on a connection set up as headrace's."""
    from headrace.store.sqlite_io import connect

    q = load("sqlite")
    conn = connect(db)
    now = time.time()
    params = {"destination": "payments", "limit": 64, "token": "bench", "now": now, "lease_until": now + 65}
    times = []
    for _ in range(runs + 2):
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute(q["claim_due"], params)
        conn.execute("ROLLBACK")
        conn.execute(q["next_due"]).fetchone()
        conn.execute(q["next_job_check"]).fetchone()
        times.append((time.perf_counter() - started) * 1000)
    conn.close()
    return statistics.median(times[2:])


def ingest(db: Path, folder: Path, events: int, concurrency: int, tag: str, extra: str = "") -> LoadResult:
    port = free_port()
    server = start([*HEADRACE, "serve", "-c", str(config(folder, db, port, extra))], port)
    try:
        run_load("127.0.0.1", port, signed_requests(port, 1000, f"warm{tag}"), concurrency)
        return run_load("127.0.0.1", port, signed_requests(port, events, tag), concurrency)
    finally:
        stop(server)


def pages(db: Path, folder: Path) -> tuple[float, float]:
    port = free_port()
    server = start([*HEADRACE, "serve", "-c", str(config(folder, db, port))], port)
    try:
        base = f"http://127.0.0.1:{port}"
        return get_ms(f"{base}/api/v1/events?limit=50", 20), get_ms(f"{base}/console/", 20)
    finally:
        stop(server)


def measure(db: Path, folder: Path, events: int, concurrency: int, tag: str) -> dict[str, float]:
    api, console = pages(db, folder)  # serve first: it brings an older generated file to this schema
    claim = claim_ms(db)
    failed = failed_ms(db)
    rare = max(failed_ms(db, status=status) for status in ("unrouted", "cancelled"))
    rate = ingest(db, folder, events, concurrency, tag).rate
    return {"ingest": rate, "api": api, "console": console, "failed": failed, "rare": rare, "claim": claim}


def trim(db: Path, size: int) -> None:
    """Back to the generated rows: drop what earlier measurements ingested (events after the first `size`)."""
    conn = sqlite3.connect(db, isolation_level=None)
    try:
        conn.execute("BEGIN")
        later = "SELECT id FROM deliveries WHERE event_id > ?"
        conn.execute(f"DELETE FROM attempts WHERE delivery_id IN ({later})", (size,))
        conn.execute("DELETE FROM deliveries WHERE event_id > ?", (size,))
        conn.execute("DELETE FROM events WHERE id > ?", (size,))
        conn.execute("COMMIT")
    finally:
        conn.close()


def database_for(folder: Path, size: int, made: list[Path], *, age: float = 0.0, name: str = "") -> Path:
    db = folder / f"scale-{name or size}.db"
    if db.exists() and stored_events(db) >= size and file_version(db) <= schema_version():
        trim(db, size)
        print(f"  reusing {db.name} ({stored_events(db):,} events, {db.stat().st_size / 1e9:.2f} GB)")
        if file_version(db) < schema_version():
            started = time.perf_counter()
            asyncio.run(_create(db))  # opening migrates it, as `serve` would at start
            print(f"  migrated to schema v{schema_version()} in {time.perf_counter() - started:.1f}s")
        return db
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    marker_path(db).unlink(missing_ok=True)
    free = shutil.disk_usage(folder).free
    need = size * ROW_BYTES * 1.3
    if need > free:
        raise SystemExit(f"{folder}: {free / 1e9:.1f} GB free, {need / 1e9:.1f} GB needed for {size:,} events")
    made.append(db)
    seconds = generate(db, size, age=age)
    print(f"  generated {size:,} events in {seconds:.0f}s: {db.name}, {db.stat().st_size / 1e9:.2f} GB")
    started = time.perf_counter()
    os.sync()  # else the first fsync of the measured ingest writes back the gigabytes just generated
    print(f"  written back to disk in {time.perf_counter() - started:.0f}s")
    return db


def remove(db: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    marker_path(db).unlink(missing_ok=True)


def prune_run(folder: Path, size: int, events: int, concurrency: int, made: list[Path]) -> None:
    db = database_for(folder, size, made, age=60 * DAY, name=f"old{size}")
    before = stored_events(db)
    off = ingest(db, folder, events, concurrency, "pruneoff", 'retention = "off"')
    copy = folder / "scale-pruning.db"
    shutil.copyfile(db, copy)  # the kept file stays unpruned for the next run
    made.append(copy)
    count = sqlite3.connect(copy)
    old_before = int(count.execute("SELECT COUNT(*) FROM events WHERE id <= ?", (before,)).fetchone()[0])
    count.close()
    on = ingest(copy, folder, events, concurrency, "pruneon", 'retention = "30d"')
    count = sqlite3.connect(copy)
    old_after = int(count.execute("SELECT COUNT(*) FROM events WHERE id <= ?", (before,)).fetchone()[0])
    count.close()
    remove(copy)
    print(
        f"\nretention: {size:,} events received 60 days ago, then {events} signed webhooks at {concurrency} connections"
    )
    print(f"  ingest, retention off      {off.rate:8.0f} events/s  p99 {off.percentile(99):6.1f} ms")
    print(
        f"  ingest while pruning       {on.rate:8.0f} events/s  p99 {on.percentile(99):6.1f} ms   "
        f"{on.rate / off.rate:5.2f}x of retention off  ({old_before - old_after:,} old events deleted meanwhile)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="0,1000000", help="stored events per step, comma-separated")
    parser.add_argument("--events", type=int, default=5000, help="webhooks sent per ingest measurement")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--prune-size", type=int, default=300_000, help="old events for the retention run (0: skip)")
    parser.add_argument("--dir", default=None, help="where the generated databases go (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the generated databases for the next run")
    parser.add_argument(
        "--rounds", type=int, default=2, help="measure every size this many times, sizes alternating (median kept)"
    )
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    if sizes[0] != 0:
        raise SystemExit("--sizes must start with 0: it is the baseline the others are compared with")
    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="headrace-scale-"))
    folder.mkdir(parents=True, exist_ok=True)
    usage = shutil.disk_usage(folder)
    print(
        f"machine: {os.cpu_count()} cores; headrace from {Path(headrace.__file__).parent}; schema v{schema_version()}"
    )
    print(f"{folder}: {usage.free / 1e9:.1f} GB free; ~{ROW_BYTES} bytes per generated event\n")
    made: list[Path] = []
    results: dict[int, dict[str, float]] = {}
    try:
        files = {}
        for size in sizes:
            print(f"{size:,} stored events")
            files[size] = database_for(folder, size, made)
        # Sizes alternate round by round, so a machine whose load changes meanwhile weighs on each size alike.
        rounds: dict[int, list[dict[str, float]]] = {size: [] for size in sizes}
        for number in range(1, args.rounds + 1):
            for size in sizes:
                trim(files[size], size)
                found = measure(
                    files[size], folder, args.events, args.concurrency, f"s{size}r{number}t{int(time.time())}"
                )
                rounds[size].append(found)
                print(f"  round {number}, {size:,} stored: " + "  ".join(f"{k} {v:.1f}" for k, v in found.items()))
        for size in sizes:
            results[size] = {key: statistics.median(r[key] for r in rounds[size]) for key in rounds[size][0]}
        ingest_ratios = [f"{a['ingest'] / b['ingest']:.2f}x" for a, b in zip(rounds[sizes[-1]], rounds[0], strict=True)]
        print(f"\ningest at {sizes[-1]:,} stored vs 0, round by round: {', '.join(ingest_ratios)}")
        base = results[0]
        print(
            f"\n{'stored':>10}  {'ingest (events/s)':>26}  {'API page':>18}  {'console page':>18}  "
            f"{'--status failed':>20}  {'unrouted/cancelled':>20}  {'idle claim':>18}"
        )
        for size, r in results.items():

            def ms(key: str, r: dict[str, float] = r) -> str:
                return f"{r[key] / base[key]:5.1f}x {r[key]:8.2f} ms"

            print(
                f"{size:>10,}  {r['ingest'] / base['ingest']:5.2f}x {r['ingest']:6.0f} (at 0: {base['ingest']:5.0f})"
                f"  {ms('api')}  {ms('console')}  {ms('failed'):>20}  {ms('rare'):>20}  {ms('claim')}"
            )
        print("(medians of the rounds; ratios against 0 stored events, same run; the 0 row's figures are the baseline)")
        if args.prune_size:
            prune_run(folder, args.prune_size, args.events, args.concurrency, made)
    finally:
        if not args.keep:
            for db in made:
                remove(db)
            for leftover in folder.glob("scale-*.toml"):
                leftover.unlink()
            if not args.dir:
                shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
