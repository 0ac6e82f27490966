"""Ingest and end-to-end benchmark, printed as ratios against a bare baseline measured in the same run.

    .venv/bin/python bench/ingest.py [--events 20000] [--concurrency 32] [--postgres URL] [--rounds 2] [--no-e2e]

1. bare:     the same server stack (aiohttp on uvloop) answering 202 to the same signed requests,
             reading the body and doing nothing else. This machine's ceiling for this stack.
2. ingest:   `headrace serve` on the embedded SQLite store (WAL, synchronous=FULL), worker off:
             verify, parse, route, commit durably (group commit), answer 202.
3. pg:       with `--postgres URL` (a server URL whose user may create databases, e.g.
             postgresql://postgres@127.0.0.1:5432/postgres): the same `headrace serve` on a fresh
             PostgreSQL database created for the run and dropped after it (synchronous_commit as the
             server has it, `on` by default), printed as a ratio of the SQLite ingest just before it.
             `--rounds N` alternates SQLite and PostgreSQL N times, so both see the same machine load.
4. e2e:      `headrace serve` with its worker on, delivering to the Windmill emulator in another
             process: from the first request sent to the last job created at the emulator; then how long
             until every job's outcome is recorded in the store (the outcome tracker after a burst).
5. deliver:  delivery alone: the events stored first by `serve` with its worker off (not timed), then
             `serve` started with its worker on: from when it listens to the last job created at the emulator,
             and `serve`'s CPU per job (claims, the run requests, the finishes and their commits; no ingest).

Payload search is indexed after the commit (headrace/ops/indexer.py): `searchable +N s` is how long after the
last answer the index had caught up with the run's events (the servers still running, not in the rate), and
`(N us/event with it)` the server CPU per event until then: `cpu` counts only the indexing done while events
arrived (the indexer takes at most a tenth of the loop then), this counts all of it.

Targets (issue 22): ingest >= 0.5x bare, p99 < 30 ms, server CPU <= 200 us an event (search indexing counted);
e2e >= 0.15x bare. (Issue 2's: ingest >= 4,000 events/s, e2e >= 1,500 events/s.)
Target (issue 22): PostgreSQL ingest >= 0.9x SQLite ingest in the same run, on a quiet machine.

`cpu` is the server side's CPU time per accepted event (for bare: per answered request): the `serve`
processes, and for PostgreSQL also the server's backends serving them (not its WAL writer). On a machine
shared with other work it moves less than the rates do. The search indexer works in the load's window too, a
share of its time: `(N us/event with it)` counts the same CPU until the index has caught up, which a cheaper
indexer (doing more of its catch-up inside the window) cannot make look dearer.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from loadgen import LoadResult, build_request, run_load, run_load_spread

from headrace.config.secret import decode_secret
from headrace.dodo import samples
from headrace.dodo.signature import sign
from headrace.store.sqlite_file import marker_path

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
PYTHON = sys.executable
HEADRACE = [PYTHON, "-m", "headrace.cli"]
BARE_APP = """
import sys, uvloop
from aiohttp import web
async def handle(request):
    await request.read()
    return web.json_response({"status": "accepted"}, status=202)
app = web.Application()
app.router.add_post("/webhooks/{source}", handle)
uvloop.install()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_port(port: int, timeout: float = 20.0) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listening on {port}")


def signed_requests(port: int, count: int, tag: str) -> list[bytes]:
    key = decode_secret(SECRET)
    body_template = samples.load("payment.succeeded")
    now = int(time.time())
    requests = []
    for i in range(count):
        body_template["data"]["payment_id"] = f"pay_{tag}_{i}"
        body = json.dumps(body_template).encode()
        webhook_id = f"msg_{tag}_{i}"
        headers = {
            "webhook-id": webhook_id,
            "webhook-timestamp": str(now),
            "webhook-signature": sign(key, webhook_id, now, body),
        }
        requests.append(build_request("127.0.0.1", port, "/webhooks/dodo", body, headers))
    return requests


def write_config(
    folder: Path, port: int, emulator_port: int, worker: bool, extra: str = "", database: str = ""
) -> Path:
    path = folder / f"bench-{port}.toml"
    path.write_text(f"""
[server]
listen = "127.0.0.1:{port}"
database = "{database or f"sqlite:///{folder}/bench.db"}"
worker = {str(worker).lower()}
log_level = "warning"
open_management = true

[sources.dodo]
secrets = ["{SECRET}"]

[destinations.payments]
source = "dodo"
events = ["payment.*"]
url = "http://127.0.0.1:{emulator_port}/api/w/bench/jobs/run/f/f/dodo/on_payment"
token = "dev-token"
concurrency = 32
{extra}
""")
    return path


def fresh_db(folder: Path) -> None:
    # The marker too: headrace refuses to start on a missing database its marker says existed.
    for suffix in ("", "-wal", "-shm"):
        (folder / f"bench.db{suffix}").unlink(missing_ok=True)
    marker_path(folder / "bench.db").unlink(missing_ok=True)


def run_e2e(
    folder: Path,
    n: int,
    c: int,
    extra: str = "",
    outcomes: bool = False,
    worker_apart: bool = False,
    serve: tuple[str, ...] = (*HEADRACE, "serve"),
) -> tuple[LoadResult, int, float]:
    """Ingest n events at full speed with the worker on; time until the emulator has created every job. The
    result's `cpu_us` is headrace's CPU time (ingest and delivery) per job created, `emulator_cpu_us` the
    emulator's (it shares the machine's cores); with `outcomes`, `outcomes_after` is how long after the last job
    was created the store had every job's outcome recorded (the tracker's lag after a burst). With `worker_apart`,
    `serve` runs with its worker off beside a `headrace worker` process (its CPU counted too). `serve`: the command,
    before its `-c CONFIG`."""
    fresh_db(folder)
    port, emu_port = free_port(), free_port()
    config = write_config(folder, port, emu_port, worker=not worker_apart, extra=extra)
    emulator = start([*HEADRACE, "dev", "windmill", "--listen", f"127.0.0.1:{emu_port}"], emu_port)
    server = start([*serve, "-c", str(config)], port)
    processes = [server]
    try:
        if worker_apart:
            processes.append(subprocess.Popen([*HEADRACE, "worker", "-c", str(config)], stdout=subprocess.DEVNULL))
            time.sleep(2)  # the worker registers and makes its first claim
        requests = signed_requests(port, n, "e2e")
        before, emulator_before = [cpu_seconds(p.pid) for p in processes], cpu_seconds(emulator.pid)
        started = time.perf_counter()
        accepted = run_load("127.0.0.1", port, requests, c)
        jobs = wait_for_jobs(emu_port, accepted.ok)
        seconds = time.perf_counter() - started
        used = sum(cpu_seconds(p.pid) - b for p, b in zip(processes, before, strict=True))
        accepted.cpu_us = used / max(jobs, 1) * 1e6
        accepted.emulator_cpu_us = (cpu_seconds(emulator.pid) - emulator_before) / max(jobs, 1) * 1e6
        if outcomes:
            accepted.outcomes_after = outcomes_recorded(folder / "bench.db")
    finally:
        for process in reversed(processes):
            stop(process)
        stop(emulator)
    return accepted, jobs, seconds


def run_deliver(folder: Path, n: int, c: int) -> tuple[float, float, float]:
    """Delivery alone: n events stored by `serve` with its worker off (not timed; the search index left to catch
    up), then `serve` with its worker on, from when it listens to the last job created at the emulator. Returns
    (jobs a second, `serve`'s CPU per job in us, the emulator's CPU per job in us)."""
    fresh_db(folder)
    port, emu_port = free_port(), free_port()
    server = start([*HEADRACE, "serve", "-c", str(write_config(folder, port, emu_port, worker=False))], port)
    try:
        stored = run_load("127.0.0.1", port, signed_requests(port, n, "deliver"), c).ok
        search_caught_up(f"sqlite:///{folder}/bench.db")
    finally:
        stop(server)
    emulator = start([*HEADRACE, "dev", "windmill", "--listen", f"127.0.0.1:{emu_port}"], emu_port)
    try:
        server = start([*HEADRACE, "serve", "-c", str(write_config(folder, port, emu_port, worker=True))], port)
        try:  # counted from when it listens (its start-up, imports and checks, is not delivery)
            before, emulator_before = cpu_seconds(server.pid), cpu_seconds(emulator.pid)
            started, first = time.perf_counter(), emulator_jobs(emu_port)
            jobs = wait_for_jobs(emu_port, stored)
            seconds = time.perf_counter() - started
            used, emulator_used = cpu_seconds(server.pid) - before, cpu_seconds(emulator.pid) - emulator_before
        finally:
            stop(server)
    finally:
        stop(emulator)
    counted = max(jobs - first, 1)
    return counted / seconds, used / counted * 1e6, emulator_used / counted * 1e6


def outcomes_recorded(database: Path, timeout: float = 300.0) -> float | None:
    """Seconds until no delivery of the run has its job open (every outcome recorded); None past `timeout`."""
    import sqlite3

    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        with contextlib.closing(sqlite3.connect(database, timeout=30)) as conn:
            (open_jobs,) = conn.execute(
                "SELECT COUNT(*) FROM deliveries WHERE job_state = 'open' OR status IN ('pending', 'in_flight')"
            ).fetchone()
        if open_jobs == 0:
            return time.perf_counter() - started
        time.sleep(0.2)
    return None


def start(args: list[str], port: int) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wait_port(port)
    return process


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


def report(name: str, result: LoadResult, baseline: LoadResult | None = None, of: str = "bare") -> None:
    ratio = f"  {result.rate / baseline.rate:5.2f}x {of}" if baseline else ""
    cpu = f"  cpu {result.cpu_us:4.0f} us/event" if result.cpu_us else ""
    if result.indexed_after is not None:
        cpu += f"  searchable +{result.indexed_after:.1f} s ({result.cpu_indexed_us:.0f} us/event with it)"
    print(
        f"{name:8} {result.rate:8.0f} req/s  p50 {result.p50:6.2f} ms  p99 {result.percentile(99):6.2f} ms"
        f"  ok {result.ok}/{result.sent}  statuses {result.statuses}{cpu}{ratio}"
    )


def measure_ingest(
    folder: Path,
    n: int,
    c: int,
    tag: str,
    database: str = "",
    instances: int = 1,
    serve: tuple[str, ...] = (*HEADRACE, "serve"),
) -> LoadResult:
    """`instances` x `headrace serve` (worker off) on one database, each on its own port, after a warm-up;
    the load's connections are spread over them. `serve`: the command, before its `-c CONFIG`."""
    ports = [free_port() for _ in range(instances)]
    servers = []
    try:
        for port in ports:
            config = write_config(folder, port, free_port(), worker=False, database=database)
            servers.append(start([*serve, "-c", str(config)], port))
        run_load_spread("127.0.0.1", ports, signed_requests(ports[0], 2000, f"warm-{tag}"), c)
        requests = signed_requests(ports[0], n, tag)
        before = {pid: cpu_seconds(pid) for pid in [s.pid for s in servers] + postgres_backends(database)}
        result = run_load_spread("127.0.0.1", ports, requests, c)
        result.cpu_us = _used(before, database) / max(result.ok, 1) * 1e6
        result.indexed_after = search_caught_up(database or f"sqlite:///{folder}/bench.db")
        result.cpu_indexed_us = _used(before, database) / max(result.ok, 1) * 1e6
        return result
    finally:
        for server in servers:
            stop(server)


def _used(before: dict[int, float], database: str) -> float:
    """CPU seconds used since `before` by those processes and by the backends serving `database` now (a backend
    that started meanwhile, as the pool opened a connection, counts from its start)."""
    pids = before.keys() | set(postgres_backends(database))
    return sum(max(0.0, cpu_seconds(pid) - before.get(pid, 0.0)) for pid in pids)


def search_caught_up(database: str, timeout: float = 120.0) -> float | None:
    """Seconds until the search index queue (indexed after the commit, headrace/ops/indexer.py) is empty, the
    servers still running; None when it is not empty within `timeout`. Not counted in the ingest rate."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout:
        if database.startswith("postgresql://"):
            import psycopg

            with psycopg.connect(database) as conn:
                row = conn.execute("SELECT COUNT(*) FROM search_pending").fetchone()
        else:
            import sqlite3

            with contextlib.closing(sqlite3.connect(database.removeprefix("sqlite:///"), timeout=30)) as conn:
                row = conn.execute("SELECT COUNT(*) FROM search_pending").fetchone()
        if row is not None and row[0] == 0:
            return time.perf_counter() - started
        time.sleep(0.05)
    return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used so far (Linux /proc; 0 when it is gone)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def postgres_backends(database: str) -> list[int]:
    """The server processes serving headrace's connections to `database` (none for SQLite)."""
    if not database.startswith("postgresql://"):
        return []
    import psycopg

    with psycopg.connect(database) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND application_name = 'headrace'"
        ).fetchall()
    return [int(row[0]) for row in rows]


@contextlib.contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A fresh database on the server of `admin_url`, dropped afterwards; yields its URL."""
    import psycopg
    from psycopg.conninfo import conninfo_to_dict

    name = f"headrace_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        params = conninfo_to_dict(admin_url)
        user = f"{params['user']}@" if params.get("user") else ""
        yield f"postgresql://{user}{params.get('host', '127.0.0.1')}:{params.get('port', 5432)}/{name}"
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def wait_for_jobs(port: int, count: int, timeout: float = 300.0) -> int:
    """The emulator's job count once it reaches `count`, or when `timeout` seconds have passed."""
    deadline = time.time() + timeout
    while (jobs := emulator_jobs(port)) < count and time.time() < deadline:
        time.sleep(0.05)
    return jobs


def emulator_jobs(port: int) -> int:
    """How many jobs the emulator has created (the count only: the whole list is the emulator's busiest route)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_emulator/jobs?count=true", timeout=30) as response:
        return int(json.load(response)["count"])


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=20000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--postgres", metavar="URL", help="also measure ingest on a fresh database on this server")
    parser.add_argument("--rounds", type=int, default=1, help="SQLite then PostgreSQL ingest, this many times")
    parser.add_argument("--no-e2e", action="store_true", help="skip the end-to-end run")
    args = parser.parse_args()
    n, c = args.events, args.concurrency
    print(
        f"machine: {os.cpu_count()} cores; {n} signed payment.succeeded events "
        f"({len(json.dumps(samples.load('payment.succeeded')))} bytes), {c} connections\n"
    )

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        port = free_port()
        bare = start([PYTHON, "-c", BARE_APP, str(port)], port)
        try:
            run_load("127.0.0.1", port, signed_requests(port, 2000, "warm"), c)
            requests = signed_requests(port, n, "bare")
            before = cpu_seconds(bare.pid)
            base = run_load("127.0.0.1", port, requests, c)
            base.cpu_us = (cpu_seconds(bare.pid) - before) / max(base.ok, 1) * 1e6
        finally:
            stop(bare)
        report("bare", base)

        ratios = []
        for round_ in range(args.rounds):
            fresh_db(folder)
            ingest = measure_ingest(folder, n, c, f"ingest{round_}")
            report("ingest", ingest, base)
            if args.postgres:
                with postgres_database(args.postgres) as url:
                    pg = measure_ingest(folder, n, c, f"pg{round_}", database=url)
                report("pg", pg, ingest, of="SQLite")
                ratios.append(pg.rate / ingest.rate)
                print(
                    f"         server-side CPU per event: PostgreSQL {pg.cpu_us / ingest.cpu_us:.2f}x SQLite's"
                    f" ({pg.cpu_indexed_us / max(ingest.cpu_indexed_us, 1e-9):.2f}x until searchable)"
                )

        pg_result = f"PostgreSQL ingest {', '.join(f'{r:.2f}x' for r in ratios)} SQLite's (target >= 0.90x)"
        if args.no_e2e:
            if ratios:
                print(f"\nresult:  {pg_result}")
            return
        e2e_ingest, jobs, seconds = run_e2e(folder, n, c, outcomes=True)
        report("e2e-in", e2e_ingest, base)
        print(
            f"e2e      {jobs / seconds:8.0f} events/s accepted -> job created at the emulator "
            f"({jobs} jobs in {seconds:.2f} s; the emulator's CPU {e2e_ingest.emulator_cpu_us:.0f} us/job)"
        )
        lag = e2e_ingest.outcomes_after
        shown = f"+{lag:.1f} s" if lag is not None else "not within 300 s"
        print(f"outcomes all recorded {shown} after the last job was created")
        rate, serve_us, emulator_us = run_deliver(folder, n, c)
        print(
            f"deliver  {rate:8.0f} jobs/s, delivery alone {rate / base.rate:5.2f}x bare; "
            f"serve CPU {serve_us:.0f} us/job ({serve_us / base.cpu_us:.1f}x bare's per request), "
            f"the emulator's {emulator_us:.0f} us/job"
        )

        print("\ntargets: ingest >= 0.50x bare, p99 < 30 ms, cpu <= 200 us/event with search; e2e >= 0.15x bare")
        print(
            f"result:  ingest {ingest.rate / base.rate:.2f}x bare ({ingest.rate:.0f}/s), "
            f"p99 {ingest.percentile(99):.1f} ms, cpu {ingest.cpu_us:.0f} us/event "
            f"({ingest.cpu_indexed_us:.0f} with search); "
            f"e2e {jobs / seconds / base.rate:.2f}x bare ({jobs / seconds:.0f}/s)"
        )
        if ratios:
            print(f"         {pg_result}")


if __name__ == "__main__":
    main()
