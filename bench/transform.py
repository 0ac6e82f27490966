"""Micro benchmark of the transformation sandbox: µs per call, and what a hostile script costs the event loop.

    python bench/transform.py [--rounds N]

Per call (median and p99), all measured in this process and run:
  - in-process, fresh context (baseline: `QuickJSSandbox`, how every user script ran before the process pool:
    a new QuickJS context per run, on the event loop's thread),
  - isolated (`ProcessPoolSandbox`, what the server runs for user scripts: the same work in a worker process,
    plus a pool thread, two pipe writes and reads, JSON off the loop),
  - built-in fast path (`ProcessPoolSandbox` with `builtin:payment`: the kept, frozen context in-process),
each as a ratio against the in-process baseline; the same reshape using `toLocaleString` (the en-US `Intl`
shim is parsed in each run), in-process and isolated, against the reshape without it; plus the reused-context
floor (not isolated) and the cost of an empty QuickJS context. Then the event loop's lateness (a 1 ms ticker,
p99) while nothing runs and while an isolated `String(10n ** 300000n)` loop runs to its wall-clock limit
(in-process it froze the loop for ~25 s).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import quickjs

from headrace.dodo import samples
from headrace.transform import Script, TransformError, WebhookObject
from headrace.transform.pool import ProcessPoolSandbox
from headrace.transform.quickjs_sandbox import QuickJSSandbox, handler_input
from headrace.transform.scripts import load_script

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


async def measure_async(
    call: Callable[[WebhookObject], Awaitable[object]], webhooks: list[WebhookObject], rounds: int
) -> list[float]:
    for webhook in webhooks:  # warm up (starts the worker process)
        await call(webhook)
    timings = []
    for _ in range(rounds):
        for webhook in webhooks:
            start = time.perf_counter()
            await call(webhook)
            timings.append((time.perf_counter() - start) * 1e6)
    return timings


async def lateness(during: Awaitable[object] | None, seconds: float) -> list[float]:
    """How late a 1 ms sleeper wakes (ms), for `seconds` or until `during` ends."""
    late: list[float] = []
    task = asyncio.ensure_future(during) if during is not None else None
    end = time.perf_counter() + seconds
    while (task is None and time.perf_counter() < end) or (task is not None and not task.done()):
        start = time.perf_counter()
        await asyncio.sleep(0.001)
        late.append((time.perf_counter() - start - 0.001) * 1000)
    if task is not None:
        with contextlib.suppress(TransformError):
            await task
    return late


def reused_context() -> Callable[[WebhookObject], object]:
    context = quickjs.Context()
    context.eval(RESHAPE)
    handler = context.get("handler")

    def call(webhook: WebhookObject) -> object:
        return json.loads(handler(context.parse_json(json.dumps(handler_input(webhook)))).json())

    return call


def row(label: str, mode: str, timings: list[float], base: list[float] | None) -> None:
    ratio = f"{statistics.median(timings) / statistics.median(base):>7.2f}x" if base else f"{'1.00x':>8}"
    median, p99 = statistics.median(timings), percentile(timings, 0.99)
    print(f"{label:<22} {mode:<34} {ratio} {median:>10.1f} {p99:>10.1f}")


async def run(rounds: int) -> None:
    script = Script("bench:reshape", RESHAPE)
    builtin = load_script("builtin:payment", Path.cwd())
    inproc = QuickJSSandbox()
    pool = ProcessPoolSandbox(workers=2)
    all_samples = [WebhookObject(t, samples.load(t), URL, webhook_id="msg_bench") for t in samples.EVENT_TYPES]
    payment = [w for w in all_samples if w.event_type == "payment.succeeded"]
    try:
        print(f"{'case':<22} {'mode':<34} {'ratio':>8} {'median µs':>10} {'p99 µs':>10}")
        empty = measure(lambda w: quickjs.Context(), payment, rounds * 20)
        print(
            f"{'(no script, no data)':<22} {'empty context create + free':<34} {'':>8} "
            f"{statistics.median(empty):>10.1f} {percentile(empty, 0.99):>10.1f}"
        )
        for label, webhooks, n in (("payment.succeeded", payment, rounds * 20), ("all samples", all_samples, rounds)):
            base = await measure_async(lambda w: inproc.transform(script, w), webhooks, n)
            row(label, "in-process, fresh context (baseline)", base, None)
            row(
                label,
                "isolated (worker process)",
                await measure_async(lambda w: pool.transform(script, w), webhooks, n),
                base,
            )
            row(label, "reused context (floor, not isolated)", measure(reused_context(), webhooks, n), base)
        locale = Script("bench:locale", RESHAPE.replace(".toFixed(2)", '.toLocaleString("en-US", LOCALE)'))
        locale = Script(locale.name, 'const LOCALE = { style: "currency", currency: "USD" };\n' + locale.source)
        base = await measure_async(lambda w: inproc.transform(script, w), payment, rounds * 20)
        row("toLocaleString script", "in-process, reshape (baseline)", base, None)
        row(
            "toLocaleString script",
            "in-process, + en-US Intl shim",
            await measure_async(lambda w: inproc.transform(locale, w), payment, rounds * 20),
            base,
        )
        row(
            "toLocaleString script",
            "isolated, + en-US Intl shim",
            await measure_async(lambda w: pool.transform(locale, w), payment, rounds * 20),
            base,
        )
        base = await measure_async(lambda w: inproc.transform(builtin, w), payment, rounds * 20)
        row("builtin:payment", "in-process kept context (baseline)", base, None)
        fast = await measure_async(lambda w: pool.transform(builtin, w), payment, rounds * 20)
        row("builtin:payment", "pool sandbox, fast path", fast, base)
        idle = await lateness(None, 1.0)
        hostile = Script("bigint.js", "function handler(w) { for (;;) String(10n ** 300000n); }")
        started = time.perf_counter()
        busy = await lateness(pool.transform(hostile, payment[0]), 5.0)
        took = time.perf_counter() - started
        print(
            f"\nevent-loop lateness, 1 ms ticker: idle p99 {percentile(idle, 0.99):.2f} ms (baseline); while an "
            f"isolated BigInt loop ran to its limit ({took * 1000:.0f} ms) p99 {percentile(busy, 0.99):.2f} ms "
            f"({percentile(busy, 0.99) / max(percentile(idle, 0.99), 0.001):.1f}x), max {max(busy):.2f} ms"
        )
    finally:
        await pool.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200, help="passes over all samples (default 200)")
    args = parser.parse_args()
    asyncio.run(run(args.rounds))


if __name__ == "__main__":
    main()
