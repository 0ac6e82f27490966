"""What per-event logging costs: log lines written and ingest rate with `log_level = "info"` (a line per
received webhook, sampled above 20 a second) against `"warning"` (no per-event lines), in the same run.

    .venv/bin/python bench/log_lines.py [--events 20000] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

from ingest import HEADRACE, free_port, fresh_db, report, signed_requests, stop, wait_port, write_config
from loadgen import LoadResult, run_load


def run(folder: Path, n: int, c: int, level: str) -> tuple[LoadResult, int, int]:
    fresh_db(folder)
    port = free_port()
    config = write_config(folder, port, free_port(), worker=False)
    config.write_text(config.read_text().replace('log_level = "warning"', f'log_level = "{level}"'))
    log_path = folder / f"{level}.log"
    with log_path.open("wb") as log:
        server = subprocess.Popen([*HEADRACE, "serve", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=log)
        try:
            wait_port(port)
            result = run_load("127.0.0.1", port, signed_requests(port, n, level), c)
        finally:
            stop(server)
    lines = log_path.read_text().splitlines()
    return result, len(lines), sum(1 for line in lines if " more webhooks received " in line)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        quiet, quiet_lines, _ = run(folder, args.events, args.concurrency, "warning")
        info, info_lines, summaries = run(folder, args.events, args.concurrency, "info")
    report("warning", quiet)
    report("info", info)
    print(f"info/warning ingest rate: {info.rate / quiet.rate:.2f}x")
    print(
        f"log lines for {args.events} events: {info_lines} at info ({summaries} of them summaries), "
        f"{quiet_lines} at warning"
    )


if __name__ == "__main__":
    main()
