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
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import (
    HEADRACE,
    cpu_seconds,
    emulator_jobs,
    free_port,
    fresh_db,
    run_e2e,
    run_load,
    signed_requests,
    start,
    stop,
    write_config,
)


def run_apart(folder: Path, n: int, c: int) -> tuple[float, float]:
    """Jobs per second and headrace's CPU per job with the worker in a process of its own."""
    fresh_db(folder)
    port, emu_port = free_port(), free_port()
    config = write_config(folder, port, emu_port, worker=False)
    emulator = start([*HEADRACE, "dev", "windmill", "--listen", f"127.0.0.1:{emu_port}"], emu_port)
    server = start([*HEADRACE, "serve", "-c", str(config)], port)
    worker = subprocess.Popen([*HEADRACE, "worker", "-c", str(config)], stdout=subprocess.DEVNULL)
    try:
        time.sleep(2)  # the worker registers and makes its first claim
        requests = signed_requests(port, n, "apart")
        pids = [server.pid, worker.pid]
        before = [cpu_seconds(pid) for pid in pids]
        started = time.perf_counter()
        accepted = run_load("127.0.0.1", port, requests, c)
        deadline = time.time() + 300
        jobs = emulator_jobs(emu_port)
        while jobs < accepted.ok and time.time() < deadline:
            time.sleep(0.1)
            jobs = emulator_jobs(emu_port)
        seconds = time.perf_counter() - started
        used = sum(cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True))
        return jobs / seconds, used / max(jobs, 1) * 1e6
    finally:
        stop(worker)
        stop(server)
        stop(emulator)


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
            apart, cpu = run_apart(Path(tmp), args.events, args.concurrency)
            print(f"apart   {apart:7.0f} jobs/s  cpu {cpu:4.0f} us/job   {apart / inside:.2f}x inside")
        ratios.append(f"{apart / inside:.2f}x")
    print(f"\nresult:  worker apart vs inside: {', '.join(ratios)}")


if __name__ == "__main__":
    main()
