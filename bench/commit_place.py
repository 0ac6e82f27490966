"""Where the SQLite writer's COMMIT runs: on the event loop (what `serve` does while the disk is fast) against the
committer thread (what it does while the disk is slow), alternating in the same run, ingest only.

    .venv/bin/python bench/commit_place.py [--events 20000] [--concurrency 32] [--rounds 3]

Both are `headrace serve` (worker off) on a fresh SQLite file; "thread" is the same build with every COMMIT sent
to the committer thread (store/sqlite_io.py, LoopWriter._commit). Each "loop" figure is printed as a ratio of the
"thread" one just before it: the accepted rate, and `serve`'s CPU per event (search indexing counted while events
arrive, as bench/ingest.py counts it). The COMMIT waits for the disk either way; on the loop it saves the hand-off
to the thread and the GIL's going back and forth, and the loop takes no request while it waits.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import PYTHON, fresh_db, measure_ingest, report

# `headrace serve`, with every COMMIT in the committer thread when the first argument is "thread".
SERVE = """
import math, sys
from headrace.store import sqlite_io

if sys.argv[1] == "thread":
    opened = sqlite_io.LoopWriter.__init__

    def in_thread(self, *args, **kwargs):
        opened(self, *args, **kwargs)
        self._thread_until = math.inf

    sqlite_io.LoopWriter.__init__ = in_thread
from headrace.cli import main

sys.argv = ["headrace", *sys.argv[2:]]
main()
"""


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    print(f"{args.events} signed events, {args.concurrency} connections; COMMIT on the loop vs on the thread")
    rates, cpus = [], []
    for n in range(args.rounds):
        results = {}
        for place in ("thread", "loop"):
            with tempfile.TemporaryDirectory() as tmp:
                folder = Path(tmp)
                fresh_db(folder)
                serve = (PYTHON, "-c", SERVE, place, "serve")
                results[place] = measure_ingest(folder, args.events, args.concurrency, f"{place}{n}", serve=serve)
        thread, loop = results["thread"], results["loop"]
        report("thread", thread)
        report("loop", loop, thread, of="thread")
        rates.append(loop.rate / thread.rate)
        cpus.append(loop.cpu_us / thread.cpu_us)
        print(f"         loop/thread: rate {rates[-1]:.2f}x, serve CPU per event {cpus[-1]:.2f}x")
    print(
        f"\nresult: rate {', '.join(f'{r:.2f}' for r in rates)}x; CPU per event {', '.join(f'{c:.2f}' for c in cpus)}x"
    )


if __name__ == "__main__":
    main()
