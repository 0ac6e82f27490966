"""`headrace check` with every sample variant, as a ratio against the plain samples only, in the same run.

    .venv/bin/python bench/check_variants.py [--repeat 3]

One destination subscribed to every event type (`events = ["*"]`) with a user script (so every sample goes
through the sandbox's process pool, the slow path), against the kit's record_payment on the Windmill emulator
on loopback. baseline: `check` with `samples.variants` answering () (the plain sample of each type, what check
ran before variants); variants: the same with every variant (samples.variants as shipped).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.helpers import config_text, free_port, settings_for

from headrace.app import make_sandbox
from headrace.check import check
from headrace.dodo import samples
from headrace.windmill.emulator import EmulatorState, running_emulator
from headrace.windmill.emulator_kit import load_kit

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = "function handler(webhook) { webhook.payload = {event_type: webhook.eventType}; return webhook; }"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    state = EmulatorState(any_path=False)
    load_kit(state, ROOT / "kit")
    real_variants = samples.variants
    with tempfile.TemporaryDirectory() as tmp, running_emulator(state) as emulator:
        base = Path(tmp)
        (base / "t.js").write_text(SCRIPT)
        text = config_text(
            base / "h.db",
            free_port(),
            emulator.url("f/dodo/record_payment"),
            events='["*"]',
            extra_dest='transform = "t.js"',
        )
        settings = settings_for(text, base)

        async def timed() -> tuple[float, int]:
            sandbox = make_sandbox()
            try:
                started = time.perf_counter()
                report = await check(settings, sandbox=sandbox, timeout=5)
                return time.perf_counter() - started, len(report.rows)
            finally:
                await sandbox.close()

        results: dict[str, list[float]] = {"baseline": [], "variants": []}
        for _ in range(args.repeat):
            for name in results:
                samples.variants = real_variants if name == "variants" else (lambda _t: ())  # type: ignore[assignment]
                seconds, _rows = asyncio.run(timed())
                results[name].append(seconds)
        samples.variants = real_variants  # type: ignore[assignment]
    builds = {
        "baseline": len(samples.EVENT_TYPES),
        "variants": len(samples.EVENT_TYPES) + sum(len(real_variants(t)) for t in samples.EVENT_TYPES),
    }
    base_s = statistics.median(results["baseline"])
    var_s = statistics.median(results["variants"])
    print(f"variants/baseline: {var_s / base_s:.2f}x time for {builds['variants'] / builds['baseline']:.2f}x samples")
    for name, seconds in results.items():
        median = statistics.median(seconds)
        print(f"  {name:9} {median * 1000:8.0f} ms median of {args.repeat}  ({builds[name]} samples)")


if __name__ == "__main__":
    main()
