"""What one client churning thousands of connections costs another client's signed webhooks.

    .venv/bin/python bench/connection_churn.py [--flood 3000] [--posts 30] [--rounds 3]

One `headrace serve` (worker off, SQLite, max_connections = 1000). A legitimate sender on 127.0.0.2 posts
`--posts` signed webhooks one after the other, each on a new connection and again over one kept-alive
connection, and its p50 latency is measured:

1. alone (the baseline of this run);
2. while 127.0.0.1 holds `--flood` idle connections (nothing sent) and reopens each one the server closes;
3. the same with connections that send half a request line and then nothing (headers never finished).

The phases alternate over `--rounds` rounds (the flooder runs in a process of its own). Printed: p50 (and
p90, failures) per phase and the ratio of each flood's p50 to the baseline's. Goal <= 2x.
Loopback only, bounded: the flood stops after each phase.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from ingest import HEADRACE, SECRET, cpu_seconds, free_port, wait_port, write_config

from headrace.config.secret import decode_secret
from headrace.dodo import samples
from headrace.dodo.signature import sign


class Flood:
    """`count` connections from 127.0.0.1, each reopened as soon as the server closes it, run in a process
        of its own at nice 19 (so the flooder's own work does not slow the measuring client's interpreter, nor take
    a core of a 2-core machine from the server: what is measured is what the churn costs headrace)."""

    def __init__(self, port: int, count: int, first_bytes: bytes) -> None:
        self._opened = multiprocessing.Value("q", 0)
        self._done = multiprocessing.Event()
        self._process = multiprocessing.Process(
            target=_flood, args=(port, count, first_bytes, self._opened, self._done), daemon=True
        )

    @property
    def connected(self) -> int:
        return int(self._opened.value)

    def start(self) -> None:
        self._process.start()

    def stop(self) -> None:
        self._done.set()
        self._process.join(30)


def _flood(port: int, count: int, first_bytes: bytes, opened: Any, done: Any) -> None:
    os.nice(19)  # on a 2-core machine the flooder's own CPU would otherwise be what slows the others down

    async def hold() -> None:
        while True:
            try:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            except OSError:
                await asyncio.sleep(0.01)
                continue
            opened.value += 1
            try:
                if first_bytes:
                    writer.write(first_bytes)
                await reader.read()
            except OSError:
                pass
            finally:
                writer.close()

    async def main() -> None:
        tasks = [asyncio.create_task(hold()) for _ in range(count)]
        await asyncio.get_running_loop().run_in_executor(None, done.wait)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(main())


def post(connection: http.client.HTTPConnection, tag: str, i: int) -> float | None:
    """Seconds one signed webhook took, or None when it failed."""
    body = samples.load("payment.succeeded")
    body["data"]["payment_id"] = f"pay_{tag}_{i}"
    data = json.dumps(body).encode()
    now, webhook_id = int(time.time()), f"msg_{tag}_{i}"
    headers = {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(now),
        "webhook-signature": sign(decode_secret(SECRET), webhook_id, now, data),
    }
    started = time.perf_counter()
    try:
        connection.request("POST", "/webhooks/dodo", data, headers)
        response = connection.getresponse()
        response.read()
    except (OSError, http.client.HTTPException):
        connection.close()
        return None
    return time.perf_counter() - started if response.status == 202 else None


def sender(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=10, source_address=("127.0.0.2", 0))


def phase(port: int, posts: int, tag: str) -> dict[str, list[float | None]]:
    kept = sender(port)
    found: dict[str, list[float | None]] = {"new connection": [], "kept-alive": []}
    for i in range(posts):
        fresh = sender(port)
        found["new connection"].append(post(fresh, f"{tag}_new", i))
        fresh.close()
        found["kept-alive"].append(post(kept, f"{tag}_kept", i))
    kept.close()
    return found


def add(results: dict[str, dict[str, list[float | None]]], name: str, found: dict[str, list[float | None]]) -> None:
    for mode, times in found.items():
        results.setdefault(name, {}).setdefault(mode, []).extend(times)


def summary(times: list[float | None]) -> tuple[float, float, int]:
    ok = sorted(t for t in times if t is not None)
    if not ok:
        return float("nan"), float("nan"), len(times)
    return statistics.median(ok), ok[int(len(ok) * 0.9) - 1 if len(ok) > 1 else 0], len(times) - len(ok)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--flood", type=int, default=3000)
    parser.add_argument("--posts", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    floods = {"idle": b"", "unfinished headers": b"POST /webhooks/dodo HTTP/1.1\r\nHost: x\r\n"}
    results: dict[str, dict[str, list[float | None]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = free_port()
        config = write_config(folder, port, free_port(), worker=False, extra="")
        config.write_text(config.read_text().replace("[server]\n", "[server]\nmax_connections = 1000\n", 1))
        server = subprocess.Popen(
            [*HEADRACE, "serve", "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        try:
            wait_port(port)
            phase(port, 10, "warm")
            # Rounds alternate the phases, so a neighbour's load on a shared machine falls on all of them.
            for r in range(args.rounds):
                add(results, "alone", phase(port, args.posts, f"alone{r}"))
                for name, first in floods.items():
                    flood = Flood(port, args.flood, first)
                    flood.start()
                    while flood.connected < args.flood + 1000:  # established, and the caps are churning it
                        time.sleep(0.05)
                    started, cpu, opened = time.monotonic(), cpu_seconds(server.pid), flood.connected
                    add(results, f"{name} flood", phase(port, args.posts, f"{name.replace(' ', '_')}{r}"))
                    seconds = time.monotonic() - started
                    rate = (flood.connected - opened) / seconds
                    busy = (cpu_seconds(server.pid) - cpu) / seconds
                    flood.stop()
                    print(
                        f"(round {r + 1}, {name} flood: {rate:.0f} reconnections/s; headrace used {busy:.0%} of a core)"
                    )
        finally:
            server.terminate()
            server.wait(30)
    print(
        f"legitimate signed POSTs from 127.0.0.2, {args.posts} per phase and round, {args.rounds} rounds, "
        f"{args.flood} flood connections:"
    )
    for mode in ("new connection", "kept-alive"):
        base = summary(results["alone"][mode])[0]
        for name, found in results.items():
            p50, p90, failed = summary(found[mode])
            print(
                f"  {mode:15} {name:26} p50 {p50 * 1000:7.2f} ms  p90 {p90 * 1000:7.2f} ms  failed {failed:3}"
                f"  ratio {p50 / base:5.2f}x"
            )


if __name__ == "__main__":
    main()
