"""Several `headrace serve` processes on one PostgreSQL database, against one, in the same run.

    .venv/bin/python bench/instances.py [--events 20000] [--concurrency 32] [--instances 1,2,3]
                                        [--postgres postgresql://postgres@127.0.0.1:5432/postgres]

For each count N: a fresh database on the server, N `headrace serve` (worker off), each on its own port,
the load generator's connections spread round-robin over them; signed events as in bench/ingest.py.
Each figure is printed as a ratio of the one-instance figure measured just before it (the baseline), so a
noisy, shared machine moves both alike. Target (issue 11): several instances together faster than one.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import measure_ingest, postgres_database, report


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--instances", default="2,3", help="the counts to compare with one instance")
    parser.add_argument("--postgres", metavar="URL", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    n, c = args.events, args.concurrency
    print(f"machine: {os.cpu_count()} cores; {n} signed events, {c} connections spread over the instances\n")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        ratios = []
        for count in (int(x) for x in args.instances.split(",")):
            with postgres_database(args.postgres) as url:
                one = measure_ingest(folder, n, c, f"one{count}", database=url)
            report("1 inst", one)
            with postgres_database(args.postgres) as url:
                several = measure_ingest(folder, n, c, f"many{count}", database=url, instances=count)
            report(f"{count} inst", several, one, of="1 instance")
            ratios.append(f"{count}: {several.rate / one.rate:.2f}x")
        print(f"\nresult:  instances together vs one: {', '.join(ratios)} (target > 1.00x)")


if __name__ == "__main__":
    main()
