"""What a hostile script costs another destination's trivial script in the sandbox pool.

    .venv/bin/python bench/sandbox_fairness.py [--runs 60] [--rounds 2]

The server's sandbox (`make_sandbox()`: 4 processes, 200 ms CPU limit). An innocent destination's trivial
script runs `--runs` times one after the other, its latency measured:

1. alone (the baseline of this run);
2. while another destination's script that always runs into its CPU limit is kept at 8 runs in flight;
3. while six previews of an edited script that always overruns are kept in flight (the console's limit
   refuses the ones past it; they are sent again at once).

Printed: the innocent's p50 and p90 per phase and each attack's p50 against the baseline's (goal <= 2x).
The phases alternate over `--rounds` rounds, so a neighbour's load on a shared machine falls on all of them.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))

from headrace.app import make_sandbox
from headrace.dodo import samples
from headrace.transform import Sandbox, Script, TransformError, WebhookObject

URL = "https://windmill.example/api/w/acme/jobs/run/f/f/dodo/on_payment"
SPIN = "function handler(w) { while (true) {} }"
HOSTILE = Script("transforms/overruns.js", SPIN)
PREVIEW = Script("edited script", SPIN)
INNOCENT = Script(
    "transforms/innocent.js", "function handler(w) { w.payload = { id: w.payload.data.payment_id }; return w }"
)


def webhook() -> WebhookObject:
    return WebhookObject("payment.succeeded", samples.load("payment.succeeded"), URL, webhook_id="msg_1")


async def keep(sandbox: Sandbox, script: Script, in_flight: int, stop: asyncio.Event) -> int:
    """Keep `in_flight` runs of `script` going until `stop`; how many ran."""
    count = 0

    async def one() -> None:
        nonlocal count
        while not stop.is_set():
            try:
                await sandbox.transform(script, webhook())
            except TransformError as exc:
                if exc.limit == "busy":
                    await asyncio.sleep(0.005)  # refused at once: an attacker sends it again
                    continue
            count += 1

    await asyncio.gather(*(one() for _ in range(in_flight)))
    return count


async def innocent(sandbox: Sandbox, runs: int) -> list[float]:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        await sandbox.transform(INNOCENT, webhook())
        times.append(time.perf_counter() - started)
    return times


async def phase(sandbox: Sandbox, runs: int, attack: tuple[Script, int] | None) -> tuple[list[float], int]:
    if attack is None:
        return await innocent(sandbox, runs), 0
    stop = asyncio.Event()
    attacker = asyncio.create_task(keep(sandbox, attack[0], attack[1], stop))
    await asyncio.sleep(0.5)  # the attack is under way, and its script has overrun already
    times = await innocent(sandbox, runs)
    stop.set()
    return times, await attacker


async def main_async(runs: int, rounds: int) -> None:
    sandbox = make_sandbox()
    phases: dict[str, tuple[Script, int] | None] = {
        "alone": None,
        "an overrunning destination, 8 in flight": (HOSTILE, 8),
        "6 previews of an overrunning script": (PREVIEW, 6),
    }
    found: dict[str, list[float]] = {name: [] for name in phases}
    try:
        await innocent(sandbox, 10)  # warm
        for _ in range(rounds):
            for name, attack in phases.items():
                times, hostile_runs = await phase(sandbox, runs, attack)
                found[name].extend(times)
                if attack is not None:
                    print(f"({name}: {hostile_runs} hostile runs meanwhile)")
    finally:
        await sandbox.close()
    base = statistics.median(found["alone"])
    print(f"the innocent destination's trivial script, {runs} runs per phase and round, {rounds} rounds:")
    for name, times in found.items():
        ordered = sorted(times)
        p50, p90 = statistics.median(ordered), ordered[int(len(ordered) * 0.9) - 1]
        print(f"  {name:42} p50 {p50 * 1000:7.2f} ms  p90 {p90 * 1000:7.2f} ms  ratio {p50 / base:5.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    asyncio.run(main_async(args.runs, args.rounds))


if __name__ == "__main__":
    main()
