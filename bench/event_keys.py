"""What event keys cost at ingest: the late-copy lookup (find_reconciled_twin) every real event with a key
makes before its INSERT, as a ratio against the same events without a key (no lookup), same run.

    .venv/bin/python bench/event_keys.py [--events 10000] [--concurrency 64] [--rounds 3] [--postgres URL]

Both arms run SQLiteStore.ingest (or PostgresStore with --postgres) with `--concurrency` concurrent callers
over the same bodies into a fresh database; the arms alternate within each round, so load on the machine
falls on both alike.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
import time
from pathlib import Path

from headrace.dodo.keys import body_key
from headrace.models import NewEvent, Route
from headrace.store.core import Store
from headrace.store.sqlite import SQLiteStore

ROUTES = [Route("payments", "http://127.0.0.1:8000/api/w/bench")]


def event(n: int, keyed: bool) -> NewEvent:
    body = json.dumps(
        {"type": "payment.succeeded", "timestamp": "2026-12-01T00:00:00Z", "data": {"payment_id": f"pay_{n}"}}
    ).encode()
    key = body_key(body) if keyed else None
    return NewEvent("dodo", f"msg_{n}", "payment.succeeded", 1000, 1000.0 + n, body, {}, key, 1000.0)


async def rate(store: Store, n: int, concurrency: int, keyed: bool) -> float:
    await store.open()
    try:
        started = time.perf_counter()
        for first in range(0, n, concurrency):
            batch = range(first, min(first + concurrency, n))
            await asyncio.gather(*(store.ingest(event(i, keyed), ROUTES) for i in batch))
        return n / (time.perf_counter() - started)
    finally:
        await store.close()


def fresh(folder: Path, name: str, postgres: str | None) -> Store:
    if postgres is None:
        return SQLiteStore(folder / f"{name}.db")
    import psycopg

    from headrace.store.postgres import PostgresStore

    with psycopg.connect(postgres, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{name}" CASCADE')
        conn.execute(f'CREATE SCHEMA "{name}"')
    separator = "&" if "?" in postgres else "?"
    return PostgresStore(f"{postgres}{separator}options=-csearch_path%3D{name}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", help="a PostgreSQL URL (schemas bench_keyed/bench_plain are recreated)")
    args = parser.parse_args()
    ratios = []
    for round_number in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp)
            arms = {}
            for keyed_arm in (False, True) if round_number % 2 == 0 else (True, False):  # alternate which goes first
                name = "bench_keyed" if keyed_arm else "bench_plain"
                store = fresh(folder, name, args.postgres)
                arms[keyed_arm] = asyncio.run(rate(store, args.events, args.concurrency, keyed_arm))
            plain, keyed = arms[False], arms[True]
        ratios.append(keyed / plain)
        print(f"round {round_number + 1}: keyed {keyed:8.0f}/s vs without a key {plain:8.0f}/s = {keyed / plain:.2f}x")
    print(f"keyed ingest: median {sorted(ratios)[len(ratios) // 2]:.2f}x of ingest without the lookup")


if __name__ == "__main__":
    main()
