"""Ingest against the bare endpoint under wrk, an outside load generator (issue 22's second row), in the same run.

    .venv/bin/python bench/wrk_ingest.py [--seconds 5] [--connections 32] [--threads 1] [--rounds 2]

bench/ingest.py drives the servers with this project's own Python load generator; this runs the same two servers
under wrk (Debian's `wrk`, C, LuaJIT) so that the ratio does not depend on that generator. Each round measures:

  bare    bench/ingest.py's bare aiohttp endpoint (uvloop, read the body, answer 202)
  ingest  `headrace serve` on SQLite (worker off): verify, parse, route, commit durably, answer 202

Every request is signed beforehand and sent once (a Lua script hands each wrk thread its own slice of a file of
raw requests), so `headrace serve` stores each one: a 200 would be a duplicate, and the run says so and asks for
more `--events`. The rate is wrk's completed requests over its duration; `cpu` is the server's CPU time per
request (user + system, /proc). Rounds alternate bare and ingest so both see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from ingest import (
    BARE_APP,
    HEADRACE,
    PYTHON,
    cpu_seconds,
    free_port,
    fresh_db,
    signed_requests,
    start,
    stop,
    write_config,
)
from loadgen import run_load

SCRIPT = r"""
local requests, next_one = {}, 0
statuses = {}  -- a global: done() reads each thread's with thread:get
local threads = {}

function setup(thread)
  thread:set("index", #threads)
  table.insert(threads, thread)
end

function init(args)
  local path, count = args[1], tonumber(args[2])
  local file = assert(io.open(path, "rb"))
  local n = 0
  while true do
    local size = file:read("*l")
    if not size then break end
    local raw = file:read(tonumber(size))
    if n % count == index then table.insert(requests, raw) end
    n = n + 1
  end
  file:close()
end

function request()
  next_one = next_one + 1
  return requests[(next_one - 1) % #requests + 1]
end

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests_)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do total[tostring(status)] = (total[tostring(status)] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(total) do table.insert(parts, string.format('"%s": %d', status, n)) end
  io.write(string.format(
    'RESULT {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, "errors": %d, "statuses": {%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    table.concat(parts, ", ")))
end
"""


def write_requests(path: Path, requests: list[bytes]) -> None:
    """Each raw request as its length on a line, then its bytes (what the Lua script reads)."""
    with path.open("wb") as out:
        for raw in requests:
            out.write(f"{len(raw)}\n".encode())
            out.write(raw)


def wrk(port: int, folder: Path, requests: Path, seconds: int, connections: int, threads: int) -> dict[str, object]:
    script = folder / "requests.lua"
    script.write_text(SCRIPT)
    command = [
        "wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(script),
        f"http://127.0.0.1:{port}/webhooks/dodo", "--", str(requests), str(threads),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"wrk failed ({done.returncode}): {done.stderr.strip() or done.stdout.strip()}")
    output = done.stdout
    line = next(line for line in output.splitlines() if line.startswith("RESULT "))
    result: dict[str, object] = json.loads(line.removeprefix("RESULT "))
    return result


def measure(
    name: str, server: list[str], port: int, folder: Path, args: argparse.Namespace, tag: str
) -> tuple[float, float]:
    process = start(server, port)
    try:
        run_load("127.0.0.1", port, signed_requests(port, 2000, f"warm-{tag}"), args.connections)
        requests = folder / f"{tag}.requests"
        write_requests(requests, signed_requests(port, args.events, tag))
        before = cpu_seconds(process.pid)
        result = wrk(port, folder, requests, args.seconds, args.connections, args.threads)
        used = cpu_seconds(process.pid) - before
    finally:
        stop(process)
    done = int(result["requests"])  # type: ignore[call-overload]
    rate = done / (int(result["duration_us"]) / 1e6)  # type: ignore[call-overload]
    statuses: dict[str, int] = result["statuses"]  # type: ignore[assignment]
    cpu = used / max(done, 1) * 1e6
    print(
        f"  {name:7} {rate:8.0f} req/s  p50 {int(result['p50_us']) / 1000:6.2f} ms"  # type: ignore[call-overload]
        f"  p99 {int(result['p99_us']) / 1000:6.2f} ms  cpu {cpu:4.0f} us/request"  # type: ignore[call-overload]
        f"  statuses {statuses}  errors {result['errors']}"
    )
    if name == "ingest" and statuses.get("200"):
        print(f"  !! {statuses['200']} duplicates: wrk sent more than --events {args.events}; raise it")
    return rate, cpu


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (one leaves the server a core)")
    parser.add_argument("--events", type=int, default=40000, help="signed requests prepared per server and round")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is not installed: apt-get install wrk")
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for round_ in range(args.rounds):
            print(f"round {round_ + 1}")
            port = free_port()
            bare, bare_cpu = measure("bare", [PYTHON, "-c", BARE_APP, str(port)], port, folder, args, f"bare{round_}")
            fresh_db(folder)
            port = free_port()
            config = write_config(folder, port, free_port(), worker=False)
            rate, cpu = measure("ingest", [*HEADRACE, "serve", "-c", str(config)], port, folder, args, f"in{round_}")
            print(f"  ingest {rate / bare:.2f}x bare's rate, {cpu / bare_cpu:.1f}x bare's CPU per request")


if __name__ == "__main__":
    main()
