"""The `headrace` command end to end: real processes, a real SQLite file, the emulator on loopback."""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from headrace.config import load
from headrace.dodo import samples
from headrace.windmill.emulator import EmulatorThread, running_emulator
from tests.helpers import SECRET, config_text, deployed_windmill, free_port

pytestmark = pytest.mark.slow


def headrace(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headrace.cli", *args], capture_output=True, text=True, cwd=cwd, timeout=60, check=False
    )


def wait_port(port: int) -> None:
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"nothing listening on {port}")


@pytest.fixture
def emulator():
    with running_emulator(deployed_windmill()) as emu:
        yield emu


@pytest.fixture
def server(tmp_path: Path, emulator: EmulatorThread):
    port = free_port()
    config = tmp_path / "h.toml"
    config.write_text(config_text(tmp_path / "h.db", port, emulator.url()))
    process = subprocess.Popen(
        [sys.executable, "-m", "headrace.cli", "serve", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_port(port)
    yield config, port
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 0, stderr
    assert "test-token" not in stderr and SECRET not in stderr  # secrets never in logs


def test_init_writes_a_private_starter_that_loads(tmp_path: Path):
    result = headrace("init", "-c", "fresh.toml", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    path = tmp_path / "fresh.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    settings = load(path, environ={})
    assert list(settings.destinations) == ["payments"] and settings.server.listen == "127.0.0.1:8787"
    assert settings.server.management == "token"  # never an open management surface by default
    token = settings.server.admin_token
    assert len(token) == 1 and len(token[0].reveal()) >= 32
    second = headrace("init", "-c", "other.toml", cwd=tmp_path)
    assert second.returncode == 0 and load(tmp_path / "other.toml", environ={}).server.admin_token != token
    again = headrace("init", "-c", "fresh.toml", cwd=tmp_path)
    assert again.returncode == 2 and "--force" in again.stderr


def test_bad_config_stops_with_the_key_named(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text(config_text(tmp_path / "h.db", 1234, "https://x/hook"))
    result = headrace("serve", "-c", str(path))
    assert result.returncode == 2
    assert "[destinations.payments] url" in result.stderr and "expected https://HOST/api/w/WORKSPACE" in result.stderr


def test_send_events_event_replay_and_rejections(server):
    config, port = server
    url = f"http://127.0.0.1:{port}/webhooks/dodo"
    sent = headrace("send", "payment.succeeded", "--to", url, "--secret", SECRET, "--webhook-id", "msg_cli")
    assert sent.returncode == 0 and "HTTP 202" in sent.stdout, sent.stdout + sent.stderr
    refused = headrace("send", "payment.succeeded", "--to", url, "--secret", "whsec_" + "QUJD" * 6)
    assert refused.returncode == 1 and "HTTP 401" in refused.stdout

    deadline = time.time() + 10
    while True:
        detail = json.loads(headrace("event", "msg_cli", "-c", str(config), "--json").stdout)
        if detail["status"] == "delivered" or time.time() > deadline:
            break
        time.sleep(0.1)
    assert detail["status"] == "delivered" and detail["deliveries"][0]["windmill_job_id"]
    human = headrace("event", "msg_cli", "-c", str(config))
    assert "payments (generation 0)  [delivered]" in human.stdout and "HTTP 201" in human.stdout

    listed = json.loads(headrace("events", "-c", str(config), "--json", "--type", "payment.*").stdout)
    assert [e["webhook_id"] for e in listed] == ["msg_cli"]
    assert json.loads(headrace("events", "-c", str(config), "--json", "--status", "failed").stdout) == []

    replay = headrace("replay", "msg_cli", "-c", str(config))
    assert replay.returncode == 0 and "1 new deliveries" in replay.stdout
    deadline = time.time() + 10
    while True:
        detail = json.loads(headrace("event", "msg_cli", "-c", str(config), "--json").stdout)
        if [d["status"] for d in detail["deliveries"]] == ["delivered", "delivered"] or time.time() > deadline:
            break
        time.sleep(0.1)
    assert [d["generation"] for d in detail["deliveries"]] == [0, 1]
    assert len({d["windmill_job_id"] for d in detail["deliveries"]}) == 2

    rejections = json.loads(headrace("rejections", "-c", str(config), "--json").stdout)
    assert [r["reason"] for r in rejections] == ["bad_signature"]

    nothing = headrace("event", "msg_nope", "-c", str(config))
    assert nothing.returncode == 2 and "no event" in nothing.stderr
    usage = headrace("replay", "-c", str(config))
    assert usage.returncode == 2 and "--failed --since" in usage.stderr


def test_transform_and_samples_commands(tmp_path: Path):
    listed = headrace("samples")
    assert listed.returncode == 0 and listed.stdout.split() == list(samples.EVENT_TYPES)
    shown = json.loads(headrace("samples", "show", "refund.succeeded").stdout)
    assert shown["type"] == "refund.succeeded"
    unknown = headrace("samples", "show", "payment.succeded")
    assert unknown.returncode == 2 and "payment.succeeded" in unknown.stderr  # suggests the close match

    result = headrace("transform", "--script", "builtin:payment", "--event", "payment.succeeded")
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert set(out) == {"eventType", "payload", "url", "method", "headers", "cancel"}
    assert out["eventType"] == "payment.succeeded" and out["cancel"] is False
    assert out["payload"]["payment_id"] == shown_payment_id()

    broken = tmp_path / "broken.js"
    broken.write_text("function handler(webhook) {\n  return webhook.payload.nope.deeper;\n}\n")
    failed = headrace("transform", "--script", str(broken), "--event", "payment.succeeded")
    assert failed.returncode == 1 and "line 2" in failed.stderr and "TypeError" in failed.stderr


def shown_payment_id() -> str:
    from headrace.dodo import samples

    return str(samples.load("payment.succeeded")["data"]["payment_id"])


def test_help_lists_every_command():
    result = headrace("--help")
    for command in ("serve", "worker", "init", "events", "event", "replay", "send", "transform", "samples", "dev"):
        assert command in result.stdout


def test_sighup_reloads_a_transformation_without_losing_work(tmp_path: Path, emulator: EmulatorThread):
    script = tmp_path / "t.js"
    script.write_text("function handler(w) { w.payload = {version: 1}; return w; }")
    port = free_port()
    config = tmp_path / "h.toml"
    config.write_text(config_text(tmp_path / "h.db", port, emulator.url(), extra_dest='transform = "t.js"'))
    log_path = tmp_path / "stderr.log"
    log = log_path.open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "headrace.cli", "serve", "-c", str(config)],
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    try:
        wait_port(port)
        url = f"http://127.0.0.1:{port}/webhooks/dodo"
        assert headrace("send", "payment.succeeded", "--to", url, "--secret", SECRET).returncode == 0
        wait_jobs(emulator, 1)
        script.write_text("function handler(w) { w.payload = {version: 2}; return w; }")
        os.kill(process.pid, signal.SIGHUP)
        deadline = time.monotonic() + 20
        while "config reloaded" not in log_path.read_text() and time.monotonic() < deadline:
            time.sleep(0.05)  # polling for the reload's log line
        assert "config reloaded" in log_path.read_text()
        assert headrace("send", "payment.succeeded", "--to", url, "--secret", SECRET).returncode == 0
        wait_jobs(emulator, 2)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(20)
        log.close()
    versions = sorted(job.args["version"] for job in emulator.state.jobs.values())
    assert versions == [1, 2]


def wait_jobs(emulator: EmulatorThread, count: int) -> None:
    deadline = time.time() + 10
    while len(emulator.state.jobs) < count and time.time() < deadline:
        time.sleep(0.05)
    assert len(emulator.state.jobs) >= count


def test_serve_keeps_what_it_built_at_start_out_of_the_garbage_collectors_passes():
    import gc

    from headrace.cli.main import keep_started

    assert gc.get_freeze_count() == 0
    try:
        keep_started(8080)
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
