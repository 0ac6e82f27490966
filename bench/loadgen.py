"""A small HTTP/1.1 load generator for loopback benchmarks: N pre-built requests over C keep-alive
connections, run in its own process so the server under test keeps a core to itself.

Requests are built before the clock starts (signing included), so the numbers measure the server.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import statistics
import time
from dataclasses import dataclass


@dataclass
class LoadResult:
    sent: int
    ok: int
    statuses: dict[int, int]
    seconds: float
    latencies_ms: list[float]
    cpu_us: float = 0.0  # CPU time of the server side per accepted request, when the caller measured it
    indexed_after: float | None = None  # seconds from the last answer until the search queue was empty
    emulator_cpu_us: float = 0.0  # the emulator's CPU per job created, in an end-to-end run
    outcomes_after: float | None = None  # seconds from the last job created until every outcome was recorded
    cpu_indexed_us: float = 0.0  # cpu_us counted until the search queue was empty (its catch-up included)

    @property
    def rate(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


async def _connection(host: str, port: int, queue: list[bytes], out: list[tuple[int, float]]) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while queue:
            request = queue.pop()
            started = time.perf_counter()
            writer.write(request)
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                raise RuntimeError(
                    f"the server on port {port} closed a connection before answering ({type(exc).__name__}): more "
                    "connections from one address than its [server] max_connections_per_peer (64 by default)?"
                ) from None
            status = int(head[9:12])
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            out.append((status, (time.perf_counter() - started) * 1000))
    finally:
        writer.close()


async def _run(host: str, ports: list[int], requests: list[bytes], concurrency: int) -> LoadResult:
    queue = list(reversed(requests))
    out: list[tuple[int, float]] = []
    started = time.perf_counter()
    await asyncio.gather(*(_connection(host, ports[i % len(ports)], queue, out) for i in range(concurrency)))
    seconds = time.perf_counter() - started
    statuses: dict[int, int] = {}
    for status, _ in out:
        statuses[status] = statuses.get(status, 0) + 1
    ok = sum(n for s, n in statuses.items() if 200 <= s < 300)
    return LoadResult(len(requests), ok, statuses, seconds, [ms for _, ms in out])


def _child(host: str, ports: list[int], requests: list[bytes], concurrency: int, conn: object) -> None:
    try:
        import uvloop

        result = uvloop.run(_run(host, ports, requests, concurrency))
    except ImportError:
        result = asyncio.run(_run(host, ports, requests, concurrency))
    conn.send(result)  # type: ignore[attr-defined]


def run_load(host: str, port: int, requests: list[bytes], concurrency: int = 32) -> LoadResult:
    return run_load_spread(host, [port], requests, concurrency)


def run_load_spread(host: str, ports: list[int], requests: list[bytes], concurrency: int = 32) -> LoadResult:
    """As `run_load`, with the connections spread round-robin over several servers (one per port)."""
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.Process(target=_child, args=(host, ports, requests, concurrency, child))
    process.start()
    child.close()  # so that a generator that dies ends the wait below instead of leaving it hanging
    try:
        result: LoadResult = parent.recv()
    except EOFError:
        process.join()
        raise RuntimeError(f"the load generator failed (exit code {process.exitcode}; its error is above)") from None
    process.join()
    return result


def build_request(host: str, port: int, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"Host: {host}:{port}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
    ]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body
