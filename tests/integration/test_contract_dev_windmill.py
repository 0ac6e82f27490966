"""`headrace dev windmill`: Windmill's 404 for undeployed paths by default, yet the starter config
(`headrace init`) works out of the box; `--accept-any-path` deploys any path on first use."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from headrace.config.starter import EMULATOR_URL
from tests.helpers import free_port

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "headrace.cli"]
KIT_FLOWS = (Path(__file__).parents[2] / "kit" / "f" / "dodo").glob("*__flow")


def wait_port(port: int) -> None:
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listening on {port}")


@contextmanager
def process(*args: str, port: int) -> Iterator[subprocess.Popen[str]]:
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_port(port)
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=20)


def call(url: str, method: str = "POST", token: str = "dev-token") -> tuple[int, str]:
    data = b"{}" if method == "POST" else None
    request = urllib.request.Request(url, data=data, method=method, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def at(port: int, url: str) -> str:
    return url.replace("127.0.0.1:8000", f"127.0.0.1:{port}")


def test_dev_windmill_deploys_the_starter_flow_and_answers_404_for_other_paths() -> None:
    port = free_port()
    with process("dev", "windmill", "--listen", f"127.0.0.1:{port}", port=port):
        run = at(port, EMULATOR_URL)
        assert call(run)[0] == 201
        assert call(run.replace("/jobs/run/f/", "/flows/get/"), "GET")[0] == 200
        other = run.replace("on_payment", "on_refund")
        assert call(other)[0] == 404
        assert call(other.replace("/jobs/run/f/", "/flows/get/"), "GET")[0] == 404
        assert call(run, token="wrong")[0] == 401


def test_dev_windmill_accept_any_path() -> None:
    port = free_port()
    with process("dev", "windmill", "--listen", f"127.0.0.1:{port}", "--accept-any-path", port=port):
        other = at(port, EMULATOR_URL).replace("on_payment", "anything")
        assert call(other)[0] == 201
        assert call(other.replace("/jobs/run/f/", "/flows/get/"), "GET")[0] == 200


@pytest.mark.parametrize("seconds", ["0", "-1", "86401"])
def test_dev_windmill_refuses_a_bad_wait_timeout(seconds: str) -> None:
    args = [*CLI, "dev", "windmill", "--wait-timeout", seconds]
    done = subprocess.run(args, capture_output=True, text=True, timeout=30)
    assert done.returncode == 2 and f"--wait-timeout {seconds}: give seconds between 0 and 86400" in done.stderr


def test_starter_config_delivers_to_dev_windmill_out_of_the_box(tmp_path: Path) -> None:
    done = subprocess.run([*CLI, "init", "-c", "h.toml"], cwd=tmp_path, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    emulator_port, server_port = free_port(), free_port()
    config = tmp_path / "h.toml"
    text = at(emulator_port, config.read_text()).replace("127.0.0.1:8787", f"127.0.0.1:{server_port}")
    config.write_text(text)
    secret = re.search(r"whsec_[A-Za-z0-9+/=]+", text)
    assert secret is not None
    with (
        process("dev", "windmill", "--listen", f"127.0.0.1:{emulator_port}", port=emulator_port),
        process("serve", "-c", str(config), port=server_port),
    ):
        ingest = f"http://127.0.0.1:{server_port}/webhooks/dodo"
        sent = subprocess.run(
            [*CLI, "send", "payment.succeeded", "--to", ingest, "--secret", secret.group(0)],
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert sent.returncode == 0, sent.stdout + sent.stderr
        deadline = time.time() + 20
        jobs: list[Any] = []
        while not jobs and time.time() < deadline:
            with urllib.request.urlopen(f"http://127.0.0.1:{emulator_port}/_emulator/jobs", timeout=5) as response:
                jobs = json.loads(response.read())["jobs"]
            time.sleep(0.1)
        assert [(job["workspace"], job["kind"], job["path"]) for job in jobs] == [("demo", "flow", "f/dodo/on_payment")]


def test_dev_windmill_takes_a_deploy_and_builds_locks_for_lock_seconds(tmp_path: Path) -> None:
    """The whole CLI: `dev windmill --lock-seconds`, then `connect windmill` in its own process."""
    port = free_port()
    config = tmp_path / "headrace.toml"
    subprocess.run([*CLI, "init", "-c", str(config)], check=True, capture_output=True, timeout=60)
    with process("dev", "windmill", "--listen", f"127.0.0.1:{port}", "--lock-seconds", "0.5", port=port):
        argv = ["connect", "windmill", "--url", f"http://127.0.0.1:{port}", "--workspace", "demo"]
        done = subprocess.run(
            [*CLI, *argv, "--token", "env:WINDMILL_TOKEN", "-c", str(config)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "WINDMILL_TOKEN": "dev-token"},
        )
        assert done.returncode == 0, done.stderr
        assert (
            "waiting for the lock of script f/dodo/" in done.stdout
            and f"all {len(list(KIT_FLOWS))} flow locks built" in done.stdout
        )
        status, _ = call(f"http://127.0.0.1:{port}/api/w/demo/jobs/run/p/f/dodo/record_refund")
        assert status == 201  # built: the deployed script runs
    assert_seconds_refused("--lock-seconds")


def assert_seconds_refused(flag: str) -> None:
    """`dev windmill FLAG` takes 0 to 3600 seconds: below and past it, exit 2 naming the flag."""
    for bad in ("-1", "3601"):
        failed = subprocess.run(
            [*CLI, "dev", "windmill", "--listen", "127.0.0.1:1", flag, bad], capture_output=True, text=True, timeout=60
        )
        assert failed.returncode == 2 and flag in failed.stderr, failed.stderr


def _revoke(port: int, token: str) -> None:
    body = json.dumps({"token": token}).encode()
    request = urllib.request.Request(f"http://127.0.0.1:{port}/_emulator/revoke", data=body, method="POST")
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.status == 200


def test_dev_windmill_auth_cache_seconds_sets_how_long_a_revoked_token_keeps_working() -> None:
    """T1: by default a revoked token keeps working from Windmill's 120 s cache; `--auth-cache-seconds 0` makes a
    revocation count at once (to try a token rotation without waiting two minutes)."""
    run = "http://127.0.0.1:{port}/api/w/demo/jobs/run/f/f/dodo/on_payment"
    for seconds, after in (("120", 201), ("0", 401)):
        port = free_port()
        with process("dev", "windmill", "--listen", f"127.0.0.1:{port}", "--auth-cache-seconds", seconds, port=port):
            assert call(run.format(port=port))[0] == 201  # accepted, and cached for `seconds`
            _revoke(port, "dev-token")
            assert call(run.format(port=port))[0] == after, seconds
    assert_seconds_refused("--auth-cache-seconds")
