"""What one run request costs the client, in CPU: `WindmillClient.run` through the aiohttp session against through
headrace's own connections (windmill/connections.py), alternating rounds in one process, against a minimal
server in another that answers 201 with a job id.

    .venv/bin/python bench/run_requests.py [--requests 20000] [--concurrency 32] [--rounds 3]

`cpu` is this process's CPU time per request (user + system, so the send and receive system calls too): on a
machine shared with other work it moves less than the rates do.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path

import aiohttp
import uvloop

sys.path.insert(0, str(Path(__file__).parent))
from ingest import free_port, stop, wait_port

from headrace.dodo import samples
from headrace.windmill.client import WindmillClient
from headrace.windmill.connections import RunConnections
from headrace.windmill.urls import parse_run_url

SERVER = """
import sys, uvloop
from aiohttp import web
async def run(request):
    await request.read()
    return web.Response(status=201, text=request.query["job_id"])
app = web.Application()
app.router.add_post("/api/w/{workspace}/jobs/run/p/{path:.+}", run)
uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""
BODY = json.dumps(samples.load("payment.succeeded")).encode()  # the 2.7 KB Dodo body, sent as is


async def measure(windmill: WindmillClient, url: str, n: int, c: int) -> tuple[float, float]:
    """(requests a second, CPU µs a request) for n run requests, c at a time."""
    target = parse_run_url(url)[0]
    headers = {"Content-Type": "application/json", "Authorization": "Bearer bench-token"}
    ids = iter([str(uuid.uuid4()) for _ in range(n)])

    async def one_by_one() -> None:
        for job_id in ids:
            response = await windmill.run(target, f"{url}?job_id={job_id}", BODY, headers)
            assert response.status == 201 and response.body == job_id, response

    started, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(one_by_one() for _ in range(c)))
    return n / (time.perf_counter() - started), (time.process_time() - cpu) / n * 1e6


async def main(n: int, c: int, rounds: int, url: str) -> None:
    results: dict[str, list[tuple[float, float]]] = {"session": [], "connections": []}
    async with aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0, ttl_dns_cache=300), headers={"User-Agent": "headrace"}
    ) as session:
        runs = RunConnections()
        clients = {"session": WindmillClient(session), "connections": WindmillClient(session, runs)}
        for windmill in clients.values():
            await measure(windmill, url, 2000, c)  # warm-up: connections open, code paths hot
        for round_ in range(rounds):
            for name, windmill in clients.items():
                rate, cpu = await measure(windmill, url, n, c)
                results[name].append((rate, cpu))
                print(f"round {round_ + 1} {name:12} {rate:8.0f} req/s  cpu {cpu:5.1f} us/request")
        await runs.close()
    session_cpu = statistics.median(cpu for _, cpu in results["session"])
    own_cpu = statistics.median(cpu for _, cpu in results["connections"])
    print(
        f"\nmedian CPU per run request: session {session_cpu:.1f} us, connections {own_cpu:.1f} us "
        f"({own_cpu / session_cpu:.2f}x)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    port = free_port()
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(port)])
    try:
        wait_port(port)
        url = f"http://127.0.0.1:{port}/api/w/bench/jobs/run/p/f/dodo/on_payment"
        uvloop.run(main(args.requests, args.concurrency, args.rounds, url))
    finally:
        stop(server)
