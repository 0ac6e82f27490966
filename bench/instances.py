"""Several `headrace serve` processes on one database, against one, in the same run.

    .venv/bin/python bench/instances.py [--events 20000] [--concurrency 32] [--instances 2,3] [--rounds 1]
                                        [--postgres postgresql://postgres@127.0.0.1:5432/postgres | --sqlite]

For each count N: a fresh database (on the PostgreSQL server, or with `--sqlite` one SQLite file in a temporary
folder), N `headrace serve` (worker off), each on its own port, the load generator's connections spread
round-robin over them; signed events as in bench/ingest.py. Each figure is printed as a ratio of the
one-instance figure measured just before it (the baseline), so a noisy, shared machine moves both alike.
Target (issue 11): several instances together faster than one. With `--sqlite` (issue 22: ingest on SQLite
using more cores), the instances take turns at the one write lock (store/sqlite_io.py, WriteTurn).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import fresh_db, measure_ingest, postgres_database, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--instances", default="2,3", help="the counts to compare with one instance")
    parser.add_argument("--postgres", metavar="URL", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--sqlite", action="store_true", help="one SQLite file instead of PostgreSQL")
    parser.add_argument("--rounds", type=int, default=1, help="measure every count this many times, alternating")
    args = parser.parse_args()
    n, c = args.events, args.concurrency
    store = "one SQLite file" if args.sqlite else "one PostgreSQL database"
    print(f"machine: {os.cpu_count()} cores; {n} signed events, {c} connections spread over the instances, {store}\n")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)

        @contextlib.contextmanager
        def fresh() -> Iterator[str]:
            if args.sqlite:
                fresh_db(folder)
                yield ""
            else:
                with postgres_database(args.postgres) as url:
                    yield url

        ratios = []
        for round_ in range(args.rounds):
            for count in (int(x) for x in args.instances.split(",")):
                with fresh() as url:
                    one = measure_ingest(folder, n, c, f"one{count}-{round_}", database=url)
                report("1 inst", one)
                with fresh() as url:
                    several = measure_ingest(folder, n, c, f"many{count}-{round_}", database=url, instances=count)
                report(f"{count} inst", several, one, of="1 instance")
                ratios.append(f"{count}: {several.rate / one.rate:.2f}x")
        print(f"\nresult:  instances together vs one: {', '.join(ratios)} (target > 1.00x)")


if __name__ == "__main__":
    main()
