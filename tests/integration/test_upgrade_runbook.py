"""docs/operations.md's upgrade procedure, run as written from the previous release (the commit below, taken
from this repository's history with `git archive`): the previous release serves and stores events on its schema,
then this release's `backup`, `db status`, `db migrate` and `serve` take over with every event kept."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.request
from io import BytesIO
from pathlib import Path

import pytest

from tests.helpers import dodo_body, free_port, signed_headers

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
PREVIOUS_RELEASE = "5c056f9"  # 2026-11-26: SQLite schema 2, no `db` commands, no `backup`
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


def previous_release(into: Path) -> Path:
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", PREVIOUS_RELEASE, "src"], capture_output=True, timeout=60, check=False
    )
    if archive.returncode != 0:
        pytest.skip(f"the previous release's commit is not in this clone: {archive.stderr.decode()[:200]}")
    with tarfile.open(fileobj=BytesIO(archive.stdout)) as tar:
        tar.extractall(into, filter="data")
    return into / "src"


def headrace(*args: str, cwd: Path, src: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(src)} if src else {**os.environ}
    return subprocess.run(
        [sys.executable, "-m", "headrace.cli", *args], capture_output=True, text=True, cwd=cwd, env=env, timeout=120
    )


def serving(port: int, cwd: Path, src: Path | None = None) -> subprocess.Popen[str]:
    env = {**os.environ, "PYTHONPATH": str(src)} if src else {**os.environ}
    process = subprocess.Popen(
        [sys.executable, "-m", "headrace.cli", "serve", "-c", "headrace.toml"],
        cwd=cwd,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stderr.read() if process.stderr else ""
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return process
        except OSError:
            time.sleep(0.1)
    raise AssertionError("serve did not listen")


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGTERM)
    assert process.wait(30) == 0
    if process.stderr is not None:
        process.stderr.close()


def send(port: int, webhook_id: str) -> int:
    body = dodo_body()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/webhooks/dodo", data=body, headers=signed_headers(body, webhook_id, secret=SECRET)
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        return response.status


def test_the_upgrade_runbook_from_the_previous_release(tmp_path: Path):
    old = previous_release(tmp_path / "previous")
    here = tmp_path / "etc"
    here.mkdir()
    port = free_port()
    (here / "headrace.toml").write_text(
        f'[server]\nlisten = "127.0.0.1:{port}"\ndatabase = "sqlite:///headrace.db"\n\n'
        f'[sources.dodo]\nsecrets = ["{SECRET}"]\n'
    )
    server = serving(port, here, old)  # the previous release, in production
    try:
        assert [send(port, f"msg_old_{n}") for n in range(3)] == [202, 202, 202]
    finally:
        stop(server)

    # 1. a backup, with the new release (the previous one has no backup command)
    backup = headrace("backup", str(tmp_path / "before-upgrade.db"), "-c", "headrace.toml", cwd=here)
    assert backup.returncode == 0, backup.stderr
    assert "schema version 2" in backup.stdout
    # 2. the new release lists the pending migrations
    status = headrace("db", "status", "-c", "headrace.toml", cwd=here)
    assert status.returncode == 1 and "migrations pending" in status.stdout, status.stdout + status.stderr
    # 3. (every serve and worker stopped: above) 4. migrate, then start the new release
    migrate = headrace("db", "migrate", "-c", "headrace.toml", cwd=here)
    assert migrate.returncode == 0 and "schema migrated from version 2" in migrate.stdout, migrate.stderr
    assert headrace("db", "status", "-c", "headrace.toml", cwd=here).returncode == 0
    server = serving(port, here)
    try:
        assert send(port, "msg_new") == 202
        assert send(port, "msg_old_1") == 200  # a late retry of an event the old release stored: a duplicate
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=10) as response:
            assert response.status == 200
    finally:
        stop(server)
    events = headrace("events", "--json", "-c", "headrace.toml", cwd=here)
    assert sorted(e["webhook_id"] for e in json.loads(events.stdout)) == [
        "msg_new",
        "msg_old_0",
        "msg_old_1",
        "msg_old_2",
    ]
    # The backup is the old database as it was: restorable for a rollback to the previous release.
    check = subprocess.run(
        ["sqlite3", str(tmp_path / "before-upgrade.db"), "PRAGMA user_version; SELECT COUNT(*) FROM events;"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert check.stdout.split() == ["2", "3"]
