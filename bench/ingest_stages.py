"""Where ingest's CPU goes: `headrace serve` with its ingest handler cut short at each stage, against the bare
aiohttp endpoint of bench/ingest.py, all in the same run. Server CPU per request (user + system).

    .venv/bin/python bench/ingest_stages.py [--events 8000] [--rounds 2]

  bare        aiohttp on uvloop, read the body, answer 202 (bench/ingest.py's baseline)
  app         headrace's application (middlewares, connection cap, request ids), read the body, answer 202
  verify      + the signature and header checks
  parse       + the strict JSON parse
  full        the whole handler: route, store durably (group commit), answer; the search indexer running
  no-index    full, the search indexer off (what indexing costs while events arrive)
  no-store    full, with the store's ingest answering at once (what the store costs)

Each stage's cost is its difference from the one before it, in the same round.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import BARE_APP, PYTHON, cpu_seconds, free_port, fresh_db, signed_requests, start, stop, write_config
from loadgen import LoadResult, run_load

STAGED = """
import sys
from aiohttp import web
from headrace.ops import indexer
from headrace.cli import main
from headrace.ingest import endpoint
from headrace.ingest.body import parse_object
from headrace.dodo.signature import verify
from headrace.models import IngestResult
from headrace.store import core

stage = sys.argv[1]
full = endpoint.Ingestor.handle


async def handle(self, request):
    if stage in ("full", "no-index", "no-store"):
        return await full(self, request)
    body = await request.read()
    if stage in ("verify", "parse"):
        keys, tolerance = self._keys["dodo"]
        h = request.headers
        verify(keys, h.get("webhook-id"), h.get("webhook-timestamp"), h.get("webhook-signature"), body,
               self.clock(), tolerance)
    if stage == "parse":
        parse_object(body)
    return web.json_response({"status": "accepted", "event_id": 1, "deliveries": 1}, status=202)


async def no_index(store, stop, busy=None):
    await stop.wait()


async def no_store(self, event, routes):
    return IngestResult(event_id=1, duplicate=False, deliveries=len(routes))


endpoint.Ingestor.handle = handle
if stage == "no-index":
    indexer.run = no_index
if stage == "no-store":
    core.Store.ingest = no_store
sys.argv = ["headrace", "serve", "-c", sys.argv[2]]
main()
"""
STAGES = ("app", "verify", "parse", "full", "no-index", "no-store")


def measure(args: list[str], port: int, n: int, c: int) -> tuple[LoadResult, float]:
    server = start(args, port)
    try:
        run_load("127.0.0.1", port, signed_requests(port, 2000, f"warm{port}"), c)
        requests = signed_requests(port, n, f"load{port}")
        before = cpu_seconds(server.pid)
        result = run_load("127.0.0.1", port, requests, c)
        return result, (cpu_seconds(server.pid) - before) / max(result.ok, 1) * 1e6
    finally:
        stop(server)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=8000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for round_ in range(args.rounds):
            port = free_port()
            bare, bare_cpu = measure([PYTHON, "-c", BARE_APP, str(port)], port, args.events, args.concurrency)
            print(f"round {round_ + 1}\n  {'bare':9} {bare.rate:7.0f} req/s  cpu {bare_cpu:5.0f} us/request")
            previous = bare_cpu
            for stage in STAGES:
                fresh_db(folder)
                port = free_port()
                config = write_config(folder, port, free_port(), worker=False)
                result, cpu = measure([PYTHON, "-c", STAGED, stage, str(config)], port, args.events, args.concurrency)
                step = "" if stage in ("no-index", "no-store") else f"  {cpu - previous:+5.0f} us"
                print(
                    f"  {stage:9} {result.rate:7.0f} req/s  cpu {cpu:5.0f} us/request{step}  "
                    f"{cpu / bare_cpu:4.1f}x bare's CPU  ok {result.ok}/{result.sent}",
                    flush=True,
                )
                if stage not in ("no-index", "no-store"):
                    previous = cpu


if __name__ == "__main__":
    main()
