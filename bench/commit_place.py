"""Where the SQLite writer's COMMIT runs: on the event loop, on the committer thread, and where `serve` puts it
(on the loop while the disk is fast, on the thread while it is slow), alternating in the same run, ingest only.

    .venv/bin/python bench/commit_place.py [--events 20000] [--concurrency 32] [--rounds 3] [--fsync-delay-ms MS]
                                           [--e2e]

All three are `headrace serve` (worker off) on a fresh SQLite file: "thread" with every COMMIT sent to the
committer thread, "loop" with every COMMIT on the event loop, "auto" as shipped (store/sqlite_io.py,
LoopWriter._commit). Each figure is printed as a ratio of the "thread" one just before it: the accepted rate
and `serve`'s CPU per event (search indexing counted while events arrive, as bench/ingest.py counts it).
`--fsync-delay-ms MS` makes every fsync of the servers sleep MS first (tests/slow_disk.py, built with the C
compiler): a spinning disk or network storage, where keeping the loop free while the disk works pays.
`--e2e` measures end to end instead (bench/ingest.py's run: the worker on, delivering to the Windmill emulator;
accepted -> job created, and `serve`'s CPU per job), where the loop also has the deliveries to do while it waits.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parent.parent))
from ingest import PYTHON, LoadResult, fresh_db, measure_ingest, report, run_e2e
from tests.slow_disk import slow_disk_environment, slow_fsync_library

# `headrace serve` with its COMMITs where the first argument says: "thread", "loop" or "auto" (as shipped).
SERVE = """
import math, sys
from headrace.store import sqlite_io

place = sys.argv[1]
if place == "thread":
    opened = sqlite_io.LoopWriter.__init__

    def in_thread(self, *args, **kwargs):
        opened(self, *args, **kwargs)
        self._thread_until = math.inf

    sqlite_io.LoopWriter.__init__ = in_thread
elif place == "loop":
    sqlite_io.LoopWriter.SLOW_COMMIT = sqlite_io.LoopWriter.STALL = math.inf
from headrace.cli import main

sys.argv = ["headrace", *sys.argv[2:]]
main()
"""
PLACES = ("thread", "loop", "auto")


def _end_to_end(folder: Path, n: int, c: int, serve: tuple[str, ...]) -> LoadResult:
    """bench/ingest.py's end-to-end run; the result's rate is jobs created a second (accepted -> job created)."""
    result, jobs, seconds = run_e2e(folder, n, c, serve=serve)
    result.seconds, result.ok = seconds, jobs  # the rate: jobs created a second; p50/p99 stay ingest's answers
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--fsync-delay-ms", type=float, default=0.0, help="every fsync sleeps this long first")
    parser.add_argument("--e2e", action="store_true", help="end to end (worker on, the emulator) instead of ingest")
    args = parser.parse_args()
    disk = "this machine's disk"
    with tempfile.TemporaryDirectory() as tmp:
        if args.fsync_delay_ms:
            os.environ.update(slow_disk_environment(slow_fsync_library(Path(tmp)), args.fsync_delay_ms))
            disk = f"every fsync {args.fsync_delay_ms:g} ms slower"
        what = "end to end (req/s: jobs created a second; cpu: serve's per job)" if args.e2e else "ingest"
        print(f"{args.events} signed events, {args.concurrency} connections, {disk}, {what}")
        print("COMMIT on the thread, on the loop, and auto (as shipped)")
        ratios: dict[str, list[tuple[float, float]]] = {place: [] for place in PLACES[1:]}
        for n in range(args.rounds):
            results = {}
            for place in PLACES:
                with tempfile.TemporaryDirectory() as run:
                    folder = Path(run)
                    fresh_db(folder)
                    serve = (PYTHON, "-c", SERVE, place, "serve")
                    if args.e2e:
                        results[place] = _end_to_end(folder, args.events, args.concurrency, serve)
                    else:
                        results[place] = measure_ingest(
                            folder, args.events, args.concurrency, f"{place}{n}", serve=serve
                        )
            thread = results["thread"]
            report("thread", thread)
            for place in PLACES[1:]:
                report(place, results[place], thread, of="thread")
                ratios[place].append((results[place].rate / thread.rate, results[place].cpu_us / thread.cpu_us))
    print()
    for place, pairs in ratios.items():
        rates = ", ".join(f"{rate:.2f}" for rate, _ in pairs)
        cpus = ", ".join(f"{cpu:.2f}" for _, cpu in pairs)
        print(f"result: {place} against thread: rate {rates}x; CPU per event {cpus}x")


if __name__ == "__main__":
    main()
