"""End to end with the delivery worker inside `serve`, against `serve` (worker off) beside a `headrace worker`
process on the same SQLite file, alternating in the same run.

    .venv/bin/python bench/worker_apart.py [--events 10000] [--concurrency 32] [--rounds 2]

Each round runs bench/ingest.py's end-to-end measurement twice on a fresh database: signed events at full speed,
timed from the first request to the last job created at the Windmill emulator. `apart` is printed as a ratio of
`inside` in the same round. `cpu` is headrace's CPU per job (`serve`, plus the worker process when apart). The two
processes take turns at SQLite's write lock (store/sqlite_io.py, WriteTurn): 0.91-1.04x inside over seven runs
on a 2-core machine, against 0.84-0.92x for the writer before it, which polled for the lock every 5 ms.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import run_e2e


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} cores; {args.events} signed events, {args.concurrency} connections, SQLite\n")
    ratios = []
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory() as tmp:
            accepted, jobs, seconds = run_e2e(Path(tmp), args.events, args.concurrency)
            inside = jobs / seconds
            print(f"inside  {inside:7.0f} jobs/s  cpu {accepted.cpu_us:4.0f} us/job")
        with tempfile.TemporaryDirectory() as tmp:
            accepted, jobs, seconds = run_e2e(Path(tmp), args.events, args.concurrency, worker_apart=True)
            apart = jobs / seconds
            print(f"apart   {apart:7.0f} jobs/s  cpu {accepted.cpu_us:4.0f} us/job   {apart / inside:.2f}x inside")
        ratios.append(f"{apart / inside:.2f}x")
    print(f"\nresult:  worker apart vs inside: {', '.join(ratios)}")


if __name__ == "__main__":
    main()
