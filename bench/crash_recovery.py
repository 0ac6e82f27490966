"""Crash recovery: how long deliveries claimed by a process killed with -9 wait before they are delivered.

    .venv/bin/python bench/crash_recovery.py [--baseline-src OLD_CHECKOUT/src] [--database postgresql://…]

One run per source tree (this checkout; and, with --baseline-src, an older headrace, e.g. from
`git worktree add /tmp/old <commit>`), each on a fresh database with the default delivery timeout (30 s):
`headrace serve` takes webhooks over HTTP and claims them; Windmill (the emulator) hangs on the first sends, so
the process holds 2 x concurrency deliveries; it is killed with -9 and a new `serve` started at once. Printed:
seconds from the kill until nothing is pending, and the ratio to the baseline. Every event must end as one job.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from pathlib import Path

from headrace.config.secret import decode_secret
from headrace.dodo.signature import sign
from headrace.windmill.emulator import running_emulator
from headrace.windmill.emulator_model import EmulatorState, Fault

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
CONCURRENCY = 2
EVENTS = 2 * CONCURRENCY + 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def config(database: str, port: int, url: str) -> str:
    return f"""
[server]
listen = "127.0.0.1:{port}"
database = "{database}"
open_management = true

[sources.dodo]
secrets = ["{SECRET}"]

[destinations.payments]
source = "dodo"
events = ["payment.*"]
url = "{url}"
token = "test-token"  # what the emulator of tests.helpers.deployed_windmill accepts
retry_schedule = ["100ms", "200ms", "500ms", "1s"]
concurrency = {CONCURRENCY}
"""


def start(src: str | None, path: Path, port: int, log: Path) -> subprocess.Popen[bytes]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    with log.open("ab") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "headrace.cli", "serve", "-c", str(path)],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
        )
    deadline = time.time() + 30
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.05)
    process.kill()
    raise SystemExit(f"serve did not start; log:\n{log.read_text()}")


def send(port: int, webhook_id: str) -> int:
    body = json.dumps({"type": "payment.succeeded", "data": {"payload_type": "Payment", "payment_id": webhook_id}})
    ts = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": ts,
        "webhook-signature": sign(decode_secret(SECRET), webhook_id, int(ts), body.encode()),
    }
    request = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/dodo", body.encode(), headers)
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def pending(port: int) -> int:
    url = f"http://127.0.0.1:{port}/api/v1/events?status=pending&limit=100"
    with urllib.request.urlopen(url, timeout=10) as response:
        return len(json.loads(response.read())["events"])


def measure(src: str | None, database: str | None, workdir: Path) -> float:
    from tests.helpers import deployed_windmill

    state: EmulatorState = deployed_windmill()
    with running_emulator(state) as emulator:
        state.inject(Fault("hang", count=CONCURRENCY, seconds=300))
        port = free_port()
        path = workdir / "h.toml"
        path.write_text(config(database or f"sqlite:///{workdir / 'h.db'}", port, emulator.url()))
        log = workdir / "serve.log"
        server = start(src, path, port, log)
        try:
            for i in range(EVENTS):
                assert send(port, f"msg_bench_{i}") == 202
            deadline = time.time() + 20
            while state.requests < CONCURRENCY and time.time() < deadline:
                time.sleep(0.05)
            time.sleep(0.5)  # the claimed-ahead deliveries are queued behind the hanging sends
            os.kill(server.pid, signal.SIGKILL)
            server.wait()
            killed = time.monotonic()
            server = start(src, path, port, log)
            while pending(port) and time.monotonic() - killed < 300:
                time.sleep(0.1)
            took = time.monotonic() - killed
        finally:
            server.send_signal(signal.SIGTERM)
            server.wait(30)
        jobs = Counter(job.args["data"]["payment_id"] for job in state.jobs.values())
        if len(jobs) != EVENTS or max(jobs.values()) != 1:
            raise SystemExit(f"expected {EVENTS} jobs, one per event; got {jobs}; serve log:\n{log.read_text()}")
        return took


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--baseline-src", help="the src/ folder of an older headrace checkout to compare with")
    parser.add_argument("--database", help="a PostgreSQL URL of an empty database (default: a new SQLite file)")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    runs = [("this checkout", None)] + ([("baseline", args.baseline_src)] if args.baseline_src else [])
    results = {}
    for name, src in runs:
        with tempfile.TemporaryDirectory() as tmp:
            results[name] = measure(src, args.database, Path(tmp))
        print(f"{name:>14}: {2 * CONCURRENCY} claimed deliveries delivered {results[name]:.1f} s after kill -9")
    if "baseline" in results:
        print(f"ratio: {results['this checkout'] / results['baseline']:.2f}x the baseline's recovery time")


if __name__ == "__main__":
    main()
