"""Micro benchmark of the transformation sandbox: µs per `run` for a payment reshape over every sample.

    python bench/transform.py [--rounds N]

Prints median and p99 for
  - reused context (baseline, NOT isolated: one context evaluates the script once and calls the
    handler again and again; globals and prototype changes would leak between runs),
  - fresh context (what QuickJSSandbox does: a new runtime per run, JSON in and out, validation),
and the ratio between them, all measured in this process; plus the bare cost of creating and freeing an
empty QuickJS context, the floor of the fresh-context approach.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from collections.abc import Callable

import quickjs

from headrace import samples
from headrace.transform import Script, WebhookObject
from headrace.transform.quickjs_sandbox import QuickJSSandbox, handler_input

RESHAPE = """\
function handler(webhook) {
  const d = webhook.payload.data || {};
  const customer = d.customer || {};
  webhook.payload = {
    event_type: webhook.eventType,
    id: d.payment_id || d.subscription_id || d.refund_id || d.dispute_id || null,
    amount: ((d.total_amount ?? d.amount ?? 0) / 100).toFixed(2),
    currency: (d.currency || "USD").toUpperCase(),
    customer_email: customer.email,
    customer_name: customer.name,
    status: d.status,
    timestamp: webhook.payload.timestamp,
    metadata: { business_id: d.business_id || webhook.payload.business_id }
  };
  webhook.headers = { "X-Dodo-Event": webhook.eventType };
  return webhook;
}
"""
URL = "https://windmill.example/api/w/acme/jobs/run/f/f/dodo/on_payment"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def measure(call: Callable[[WebhookObject], object], webhooks: list[WebhookObject], rounds: int) -> list[float]:
    for webhook in webhooks:  # warm up
        call(webhook)
    timings = []
    for _ in range(rounds):
        for webhook in webhooks:
            start = time.perf_counter()
            call(webhook)
            timings.append((time.perf_counter() - start) * 1e6)
    return timings


def reused_context() -> Callable[[WebhookObject], object]:
    context = quickjs.Context()
    context.eval(RESHAPE)
    handler = context.get("handler")

    def call(webhook: WebhookObject) -> object:
        return json.loads(handler(context.parse_json(json.dumps(handler_input(webhook)))).json())

    return call


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200, help="passes over all samples (default 200)")
    args = parser.parse_args()
    script = Script("bench:reshape", RESHAPE)
    sandbox = QuickJSSandbox()
    all_samples = [WebhookObject(t, samples.load(t), URL) for t in samples.EVENT_TYPES]
    payment = [w for w in all_samples if w.event_type == "payment.succeeded"]
    cases: list[tuple[str, list[WebhookObject], int]] = [
        ("payment.succeeded", payment, args.rounds * 20),
        (f"all {len(all_samples)} samples", all_samples, args.rounds),
    ]
    print(f"{'case':<24} {'mode':<30} {'median µs':>10} {'p99 µs':>10}")
    empty = measure(lambda w: quickjs.Context(), payment, args.rounds * 20)
    label, mode = "(no script, no data)", "empty context create + free"
    print(f"{label:<24} {mode:<30} {statistics.median(empty):>10.1f} {percentile(empty, 0.99):>10.1f}")
    for label, webhooks, rounds in cases:
        base = measure(reused_context(), webhooks, rounds)
        fresh = measure(lambda w: sandbox.run(script, w), webhooks, rounds)
        for mode, timings in (("reused context (not isolated)", base), ("fresh context (QuickJSSandbox)", fresh)):
            print(f"{label:<24} {mode:<30} {statistics.median(timings):>10.1f} {percentile(timings, 0.99):>10.1f}")
        ratio = statistics.median(fresh) / statistics.median(base)
        print(f"{label:<24} {'fresh / reused (median)':<30} {ratio:>10.2f}x")


if __name__ == "__main__":
    main()
