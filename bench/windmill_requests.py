"""Windmill API requests per delivered event, with outcomes tracked to the end (issue 22, CONTRACT J7).

    .venv/bin/python bench/windmill_requests.py [--events 200] [--rate 20] [--queue 1] [--run 3]

`headrace serve` (worker on, SQLite) in this process against the emulator on loopback: `--events` events
sent at `--rate` a second to one destination whose jobs queue `--queue` s (`started: false`) and then run
`--run` s. Every job's outcome is waited for in the store; then the emulator's count of requests to each
Windmill route is divided by the events. Three layouts in the same run:

- per-job: the tracker's list lookups off (`LIST_LOOKUPS = False`): get_result_maybe polls with back-off,
  get_timing for the duration, jobs_u/get every 5th look at a queued job (the release before J7);
- list, job_results = true: one jobs/completed/list per target per round, then one get_result_maybe per
  completed job for its result;
- list (the default, `job_results = false`): a success's outcome and duration from the list alone.

Goal (issue 22): <= 1.5 requests per delivered event at steady state, outcomes still tracked.

`--rounds-of-25`: instead, how long after the last event its outcomes are all recorded, with rounds that grow while
the list answers every job (the default) against rounds of 25 jobs (the tracker before), alternating; e.g.
`--events 3000 --rate 300 --queue 0 --run 0.2 --rounds-of-25`.
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.helpers import config_text, dodo_body, free_port, running_server, settings_for, signed_headers

from headrace.deliver import tracker
from headrace.windmill.emulator import EmulatorState, running_emulator

LIST_BATCH = tracker.LIST_BATCH


def target_state(queue: float, run: float) -> EmulatorState:
    """A script whose jobs wait `queue` s not started (as in Windmill's queue), then run `run` s."""
    state = EmulatorState()

    async def job(args: dict[str, Any], context: dict[str, Any]) -> Any:
        record = state.jobs[context["job_id"]]
        record.started_at = None
        await asyncio.sleep(queue)
        record.started_at = time.time()
        await asyncio.sleep(run)
        return {"booked": True}

    state.add_target("script", "f/dodo/on_payment", job)
    return state


def finished(db: Path) -> int:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        row = conn.execute("SELECT COUNT(*) FROM deliveries WHERE job_state = 'success'").fetchone()
    return int(row[0])


LAST_SENT: list[float] = []  # seconds from the start to the last event's answer, per measured run


async def drive(base: str, db: Path, events: int, rate: float, tag: str) -> float:
    """Send the events at `rate`, wait for every outcome; seconds from the first event to the last outcome."""
    started = time.monotonic()
    async with aiohttp.ClientSession() as http:
        for n in range(events):
            body = dodo_body()
            async with http.post(f"{base}/webhooks/dodo", data=body, headers=signed_headers(body, f"{tag}_{n}")) as r:
                assert r.status in (200, 202), r.status
            await asyncio.sleep(max(0.0, started + (n + 1) / rate - time.monotonic()))
    LAST_SENT.append(time.monotonic() - started)
    deadline = time.monotonic() + 300
    while finished(db) < events:
        if time.monotonic() > deadline:
            raise SystemExit(f"{tag}: only {finished(db)} of {events} outcomes recorded in 300 s")
        await asyncio.sleep(0.2)
    return time.monotonic() - started


def measure(layout: str, args: argparse.Namespace) -> tuple[dict[str, int], float]:
    tracker.LIST_LOOKUPS = layout != "per-job"
    tracker.LIST_BATCH = tracker.BATCH if layout.endswith("rounds of 25") else LIST_BATCH
    state = target_state(args.queue, args.run)
    with tempfile.TemporaryDirectory() as tmp, running_emulator(state) as emu:
        folder = Path(tmp)
        db = folder / "h.db"
        extra = "job_results = true" if layout.endswith("true") else ""
        settings = settings_for(config_text(db, free_port(), emu.url(), extra_dest=extra), folder)

        async def run() -> float:
            async with running_server(settings) as base:
                return await drive(base, db, args.events, args.rate, layout.replace(" ", "_"))

        seconds = asyncio.run(run())
        return dict(state.calls), seconds


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200)
    parser.add_argument("--rate", type=float, default=20.0, help="events sent a second")
    parser.add_argument("--queue", type=float, default=1.0, help="seconds a job waits before it starts")
    parser.add_argument("--run", type=float, default=3.0, help="seconds a job runs")
    parser.add_argument("--rounds-of-25", action="store_true", help="outcome lag: growing rounds vs rounds of 25")
    args = parser.parse_args()
    print(f"{args.events} events at {args.rate:g}/s, jobs queue {args.queue:g} s and run {args.run:g} s")
    if args.rounds_of_25:
        for number in (1, 2):
            lags = {}
            for layout in ("list", "list, rounds of 25"):
                calls, seconds = measure(layout, args)
                lags[layout] = seconds - LAST_SENT[-1]  # from the last event's answer
                print(
                    f"round {number}: {layout:20} outcomes all recorded {lags[layout]:6.1f} s after the last event "
                    f"({sum(c for n, c in calls.items() if n != 'script') / args.events:.2f} requests/event)"
                )
            print(f"round {number}: growing rounds' lag {lags['list'] / lags['list, rounds of 25']:.2f}x rounds of 25")
        return
    per_event: dict[str, float] = {}
    for layout in ("per-job", "list, job_results = true", "list"):
        calls, seconds = measure(layout, args)
        windmill = {name: count for name, count in calls.items() if name != "script"}  # preflight: cached
        per_event[layout] = sum(windmill.values()) / args.events
        parts = "  ".join(f"{name} {count}" for name, count in sorted(windmill.items()))
        print(f"{layout:27} {per_event[layout]:5.2f} requests/event  ({parts}; all outcomes in {seconds:.1f} s)")
    base = per_event["per-job"]
    for layout in ("list, job_results = true", "list"):
        print(f"{layout:27} {per_event[layout] / base:5.2f}x per-job")


if __name__ == "__main__":
    main()
