"""What the reference guard after a transformation costs (issue 17 item 7), against baselines in the same run.

    .venv/bin/python bench/reference_guard.py [--runs 2000]

Each case builds one delivery of the bundled payment.succeeded sample with `build_request` (the worker's own
function, in-process QuickJS sandbox) and reports the median per delivery:

- `plain`: a user script whose output has no string starting with `$` (the common case: the guard costs one
  substring search), the baseline;
- `guarded`: the same script with five strings Windmill would resolve (customer text cut with trim/split),
  which are walked, marked and serialised again;
- `reference`: the same as `plain` plus one `windmill.reference(...)` (the helper and the walk that finds it).

Ratios are to `plain`. Also `guard_output` alone on the guarded payload against `json.dumps` of it.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from collections.abc import Callable

from headrace.deliver.request import Request, build_request
from headrace.dodo import samples
from headrace.transform import Script
from headrace.transform.quickjs_sandbox import QuickJSSandbox
from headrace.windmill.references import guard_output
from headrace.windmill.urls import RunTarget, parse_run_url

BODY = """
function handler(w) {
  const d = w.payload.data;
  const words = (d.customer.name + " $var:u/a/b").trim().split(" ");
  w.payload = {first: words[0], amount: d.total_amount, currency: d.currency, email: d.customer.email,
               %s};
  return w;
}
"""
CASES = {
    "plain": BODY % "id: d.payment_id",
    "guarded": BODY % 'id: d.payment_id, rest: words.slice(1), tags: "$WM_TOKEN,$res:u/a/db,$var:x".split(",")',
    "reference": BODY % 'id: d.payment_id, db: windmill.reference("$res:f/dodo/db")',
}


def median_us(call: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=2000)
    args = parser.parse_args()
    target = parse_run_url("http://127.0.0.1:9/api/w/acme/jobs/run/p/f/dodo/on_payment")[0]
    body = json.dumps(samples.load("payment.succeeded")).encode()
    sandbox = QuickJSSandbox()
    loop = asyncio.new_event_loop()
    results = {}
    for name, source in CASES.items():
        script = Script(f"{name}.js", source)

        def one(script: Script = script) -> object:
            return loop.run_until_complete(build_request(target, "payment.succeeded", body, "m", script, sandbox))

        built = one()
        assert isinstance(built, Request), built
        results[name] = median_us(one, args.runs)
    for name, value in results.items():
        print(f"{name:10} {value:8.1f} µs per delivery  {value / results['plain']:.2f}x plain")
    guarded = one_payload(loop, target, body, sandbox)
    walk = median_us(lambda: guard_output(guarded), args.runs * 5)
    dumps = median_us(lambda: json.dumps(guarded, separators=(",", ":"), ensure_ascii=False), args.runs * 5)
    print(f"guard_output {walk:.1f} µs, json.dumps {dumps:.1f} µs: {walk / dumps:.2f}x the serialisation")


def one_payload(loop: asyncio.AbstractEventLoop, target: RunTarget, body: bytes, sandbox: QuickJSSandbox) -> object:
    script = Script("g.js", CASES["guarded"])
    built = loop.run_until_complete(build_request(target, "payment.succeeded", body, "m", script, sandbox))
    assert isinstance(built, Request)
    return json.loads(built.body)


if __name__ == "__main__":
    main()
