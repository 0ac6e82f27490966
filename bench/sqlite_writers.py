"""Several processes group-committing to one SQLite file: does a second writer add throughput, and how should a
writer wait for SQLite's one write lock? An experiment for issue 22's "use more cores on SQLite", not headrace code.

    .venv/bin/python bench/sqlite_writers.py [--seconds 4] [--outside-us 150] [--batch 32] [--rounds 3]

Each process loops: `--batch` events of `--outside-us` µs of CPU each (what a server spends on an event outside
its transaction: HTTP, signature, parse), then one transaction (BEGIN IMMEDIATE, an INSERT of a 2.7 KB event and
of its delivery per event, COMMIT) in WAL mode with `synchronous=FULL`, as headrace's store writes. Measured with
one process and with two, in two ways of waiting for the lock:

  poll   BEGIN IMMEDIATE with no busy timeout; "locked" -> sleep 5 ms and try again (headrace's writer today)
  flock  wait for an exclusive flock on a file beside the database first (the kernel queues the waiters and
         wakes one as soon as the other unlocks), then BEGIN IMMEDIATE, which then never finds the lock taken

Printed: events/s committed by all processes, and two processes as a ratio of one, in the same round.
"""

from __future__ import annotations

import argparse
import fcntl
import multiprocessing
import os
import sqlite3
import tempfile
import time
from pathlib import Path

BODY = os.urandom(1350).hex().encode()  # 2.7 KB, as the bench's signed payment.succeeded


def spin(microseconds: float) -> None:
    end = time.perf_counter() + microseconds / 1e6
    while time.perf_counter() < end:
        pass


def writer(path: str, mode: str, args: argparse.Namespace, index: int, out: multiprocessing.Queue) -> None:  # type: ignore[type-arg]
    conn = sqlite3.connect(path, isolation_level=None, timeout=0)
    conn.execute("PRAGMA synchronous = FULL")
    lock = open(path + ".lock", "w")  # noqa: SIM115 - held for the process's life
    done = retries = made = 0
    end = time.time() + args.seconds
    while time.time() < end:
        rows = []
        for _ in range(args.batch):
            spin(args.outside_us)
            made += 1
            rows.append((f"msg_{index}_{made}", BODY))
        if mode == "flock":
            fcntl.flock(lock, fcntl.LOCK_EX)
        while True:
            try:
                conn.execute("BEGIN IMMEDIATE")
                break
            except sqlite3.OperationalError:
                retries += 1
                time.sleep(0.005)
        for webhook_id, body in rows:
            (event_id,) = conn.execute(
                "INSERT INTO events (webhook_id, body) VALUES (?, ?) RETURNING id", (webhook_id, body)
            ).fetchone()
            conn.execute("INSERT INTO deliveries (event_id, destination) VALUES (?, 'payments')", (event_id,))
        conn.execute("COMMIT")
        if mode == "flock":
            fcntl.flock(lock, fcntl.LOCK_UN)
        done += args.batch
    out.put((done, retries))


def measure(folder: Path, processes: int, mode: str, args: argparse.Namespace) -> tuple[float, int]:
    path = folder / f"writers-{mode}-{processes}.db"
    for suffix in ("", "-wal", "-shm", ".lock"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, webhook_id TEXT UNIQUE, body BLOB)")
        conn.execute(
            "CREATE TABLE deliveries (id INTEGER PRIMARY KEY, event_id INTEGER, destination TEXT,"
            " UNIQUE (event_id, destination))"
        )
    out: multiprocessing.Queue = multiprocessing.Queue()  # type: ignore[type-arg]
    workers = [multiprocessing.Process(target=writer, args=(str(path), mode, args, n, out)) for n in range(processes)]
    for process in workers:
        process.start()
    results = [out.get() for _ in workers]
    for process in workers:
        process.join()
    return sum(done for done, _ in results) / args.seconds, sum(retries for _, retries in results)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--outside-us", type=float, default=150.0, help="CPU per event outside the transaction")
    parser.add_argument("--batch", type=int, default=32, help="events per transaction (a group commit)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; {args.outside_us:g} µs outside the lock per event, {args.batch} a batch\n")
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for mode in ("poll", "flock"):
                one, _ = measure(Path(tmp), 1, mode, args)
                two, retries = measure(Path(tmp), 2, mode, args)
                print(
                    f"round {round_ + 1} {mode:5}  1 process {one:6.0f} events/s  2 processes {two:6.0f} events/s"
                    f"  {two / one:4.2f}x  (lock found taken {retries} times)"
                )


if __name__ == "__main__":
    main()
