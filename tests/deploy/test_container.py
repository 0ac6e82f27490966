"""deploy/Containerfile, built with podman and run: a signed event sent to headrace in the container is
delivered to the Windmill emulator on the host, `headrace event` inside the container shows it, and
`podman stop` shuts it down gracefully. Secrets come in through the environment as the docs say."""

from __future__ import annotations

import json
import os
import re
import socket
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

from headrace.windmill.emulator import EmulatorState, running_emulator
from tests.deploy.podman import RUN, build_headrace, ensure_podman, podman
from tests.helpers import SECRET, dodo_body, free_port, signed_headers

pytestmark = pytest.mark.slow
AUDIT = """
[destinations.audit]
source = "dodo"
events = ["refund.*"]
url = "{url}"
token = "env:WINDMILL_TOKEN"
"""

ADMIN_TOKEN = "container-test-admin-token-0123456789abcdef"
WINDMILL_TOKEN = "container-test-windmill-token"


@pytest.fixture(scope="module")
def image() -> str:
    ensure_podman()
    return build_headrace()


def documented_config_mount(confdir: Path) -> list[str]:
    """The `-v` of docs/operations.md's `podman run` that brings in /etc/headrace, with this test's folder."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text("utf-8")
    block = text.split("### Container (podman or docker)")[1].split("```sh")[1].split("```")[0]
    [mount] = re.findall(r"-v (/etc/headrace\S*):(\S+)", block)
    host, inside = mount
    return ["-v", f"{str(confdir) + host.removeprefix('/etc/headrace')}:{inside}"]


def container_log(name: str) -> str:
    result = podman("logs", name)
    return result.stdout + result.stderr


def volumes() -> set[str]:
    return set(podman("volume", "ls", "--quiet").stdout.split())


def wait_port(port: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.2)
    raise AssertionError(f"nothing listening on 127.0.0.1:{port}")


def test_a_signed_event_goes_through_the_container_to_windmill(image: str, tmp_path: Path) -> None:
    port = free_port()
    data = tmp_path / "data"
    data.mkdir()
    data.chmod(0o777)  # the container's unprivileged headrace user writes the database here
    state = EmulatorState(tokens={WINDMILL_TOKEN})
    state.add_target("script", "f/dodo/on_payment")  # like Windmill, the emulator answers 404 for what is not deployed
    with running_emulator(state) as emulator:
        confdir = tmp_path / "etc-headrace"
        confdir.mkdir()
        confdir.chmod(0o755)
        config = confdir / "headrace.toml"
        config.write_text(
            f"""
[server]
listen = "127.0.0.1:{port}"
database = "sqlite:////var/lib/headrace/headrace.db"
admin_token = "env:HEADRACE_ADMIN_TOKEN"

[sources.dodo]
secrets = ["env:DODO_WEBHOOK_SECRET"]

[destinations.payments]
source = "dodo"
events = ["payment.*"]
url = "{emulator.url("f/dodo/on_payment")}"
token = "env:WINDMILL_TOKEN"
transform = "builtin:payment"
retry_schedule = ["100ms", "1s"]
"""
        )
        config.chmod(0o644)
        name = f"headrace-test-{uuid.uuid4().hex[:8]}"
        volumes_before = volumes()
        podman(
            "run", "-d", "--name", name, *RUN, "--network", "host",
            *documented_config_mount(confdir), "-v", f"{data}:/var/lib/headrace",
            "-e", f"HEADRACE_ADMIN_TOKEN={ADMIN_TOKEN}", "-e", f"DODO_WEBHOOK_SECRET={SECRET}",
            "-e", f"WINDMILL_TOKEN={WINDMILL_TOKEN}",
            image,
        )  # fmt: skip
        try:
            wait_port(port)
            body = dodo_body()
            request = urllib.request.Request(
                f"http://127.0.0.1:{port}/webhooks/dodo",
                data=body,
                headers=signed_headers(body, "msg_container"),
                method="POST",
            )
            with urllib.request.urlopen(request, timeout=10) as response:
                assert response.status == 202 and response.headers["X-Request-Id"]
            deadline = time.monotonic() + 30
            while not emulator.state.jobs and time.monotonic() < deadline:
                time.sleep(0.1)
            [job] = emulator.state.jobs.values()
            assert job.args["payment_id"] == "pay_1"  # transformed by builtin:payment inside the container

            shown = podman(
                "exec", name, "headrace", "event", "msg_container", "-c", "/etc/headrace/headrace.toml", "--json"
            )
            detail = json.loads(shown.stdout)
            assert detail["status"] == "delivered" and detail["deliveries"][0]["windmill_job_id"] == job.id

            # Edit the config as an editor saves it (a new file renamed over the old one), then reload.
            edited = confdir / ".headrace.toml.swp"
            edited.write_text(config.read_text() + AUDIT.format(url=emulator.url("f/dodo/audit")))
            edited.chmod(0o644)
            os.replace(edited, config)
            podman("kill", "--signal", "HUP", name)
            deadline = time.monotonic() + 30
            while "config reloaded" not in (logs := container_log(name)) and time.monotonic() < deadline:
                time.sleep(0.2)
            assert "config reloaded: destinations added: audit" in logs, logs[-2000:]

            podman("stop", "-t", "30", name, timeout=60)
            state = json.loads(podman("inspect", name).stdout)[0]["State"]
            logs = podman("logs", name).stderr + podman("logs", name).stdout
            assert state["ExitCode"] == 0, logs
            assert "headrace listening" in logs and "shutting down" in logs
            for secret in (ADMIN_TOKEN, WINDMILL_TOKEN, SECRET):
                assert secret not in logs
            assert (data / "headrace.db").exists()
            podman("rm", name)  # as documented: no -v, and yet no volume is left behind
            assert volumes() == volumes_before
        finally:
            podman("rm", "-f", name, check=False)
