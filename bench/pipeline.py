"""Transformation cost per built-in template, and the pipeline rate with and without a transformation.

    .venv/bin/python bench/pipeline.py [--events 10000] [--rounds 20]

1. For each built-in template, µs per event over the bundled samples it handles (JSON in and out
   included), next to the JSON round trip alone (json.loads + json.dumps of the same body), the floor.
2. End to end (ingest -> SQLite -> worker -> emulator) with no transformation, with
   transform = "builtin:payment" (in-process fast path) and with a user script file (run in the sandbox's
   worker processes), in the same run, and the throughput lost against no transformation.

Targets (issue 3): payment template median <= 150 us; the pipeline loses <= 15 % with a transform.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import run_e2e

from headrace.dodo import samples
from headrace.transform import WebhookObject
from headrace.transform.quickjs_sandbox import QuickJSSandbox
from headrace.transform.scripts import list_builtins, load_script

# A pasted handler of the kind Dodo's docs show: runs in the sandbox's worker processes.
USER_SCRIPT = """function handler(webhook) {
  const d = webhook.payload.data || {};
  webhook.payload = {
    event_type: webhook.eventType,
    payment_id: d.payment_id || null,
    amount: d.total_amount,
    currency: d.currency,
    customer_email: (d.customer || {}).email,
  };
  return webhook;
}
"""
HANDLED = {"payment": "payment.", "subscription": "subscription.", "dispute": "dispute.", "refund": "refund."}


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=10000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=20)
    args = parser.parse_args()

    sandbox = QuickJSSandbox()
    print(f"{'template':14} {'events':>6} {'median us':>10} {'p99 us':>8} {'json floor':>11}  ratio")
    for name in list_builtins():
        script = load_script(f"builtin:{name}", Path.cwd())
        prefix = HANDLED.get(name, "")
        types = [t for t in samples.EVENT_TYPES if t.startswith(prefix)]
        bodies = [samples.load(t) for t in types]
        timings, floor = [], []
        for event_type, body in zip(types, bodies, strict=True):  # warm up: the kept context is built once
            sandbox.run(script, WebhookObject(event_type, body, "https://w.example/api/w/a/jobs/run/p/f/a/b"))
        for _ in range(args.rounds):
            for event_type, body in zip(types, bodies, strict=True):
                raw = json.dumps(body)
                started = time.perf_counter()
                sandbox.run(
                    script,
                    WebhookObject(
                        event_type,
                        json.loads(raw),
                        "https://w.example/api/w/a/jobs/run/p/f/a/b",
                        webhook_id="msg_bench",
                    ),
                )
                timings.append((time.perf_counter() - started) * 1e6)
                started = time.perf_counter()
                json.dumps(json.loads(raw))
                floor.append((time.perf_counter() - started) * 1e6)
        median, base = statistics.median(timings), statistics.median(floor)
        print(
            f"{name:14} {len(types):>6} {median:>10.0f} {pct(timings, 99):>8.0f} {base:>11.1f}  {median / base:5.1f}x"
        )

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        _, plain_jobs, plain_s = run_e2e(folder, args.events, args.concurrency)
        _, js_jobs, js_s = run_e2e(folder, args.events, args.concurrency, 'transform = "builtin:payment"')
        (folder / "reshape.js").write_text(USER_SCRIPT, encoding="utf-8")
        _, user_jobs, user_s = run_e2e(folder, args.events, args.concurrency, 'transform = "reshape.js"')
    plain, js, user = plain_jobs / plain_s, js_jobs / js_s, user_jobs / user_s
    print(f"\npipeline without transform {plain:7.0f} events/s ({plain_jobs} jobs in {plain_s:.2f} s) (baseline)")
    print(f"pipeline builtin:payment   {js:7.0f} events/s ({js_jobs} jobs in {js_s:.2f} s) {js / plain:.2f}x")
    print(f"pipeline user script (.js) {user:7.0f} events/s ({user_jobs} jobs in {user_s:.2f} s) {user / plain:.2f}x")
    print(f"throughput lost to builtin:payment: {(1 - js / plain) * 100:.1f} %  (target <= 15 %)")
    print(f"throughput lost to an isolated user script: {(1 - user / plain) * 100:.1f} %")


if __name__ == "__main__":
    main()
