"""deploy/compose/compose.yaml run by podman-compose (PyPI): headrace on PostgreSQL, both health checks
pass, and a signed event sent to the published port is stored in PostgreSQL and delivered to a Windmill
emulator running as a third service (`headrace dev windmill` from the same image)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import pytest
import yaml

from tests.deploy.podman import ROOT, build, build_headrace, ensure_podman, podman
from tests.helpers import SECRET, dodo_body, free_port, signed_headers

pytestmark = pytest.mark.slow

COMPOSE = ROOT / "deploy" / "compose"
WINDMILL_TOKEN = "compose-test-windmill-token"
ADMIN_TOKEN = "compose-test-admin-token-0123456789abcdef"


def metrics_status(port: int, token: str) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def podman_compose() -> str:
    path = Path(sys.executable).with_name("podman-compose")
    if not path.exists():
        pytest.skip("podman-compose is not installed (pip install -e '.[dev]' installs it)")
    return str(path)


def wait_healthy(container: str, timeout: float = 120) -> None:
    """Run the container's own health check until it passes (podman schedules checks only under systemd)."""
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        result = podman("healthcheck", "run", container, check=False)
        if result.returncode == 0:
            return
        last = result.stdout + result.stderr
        time.sleep(1)
    logs = podman("logs", container, check=False)
    raise AssertionError(
        f"{container} not healthy within {timeout}s: {last}\n{logs.stdout[-2000:]}{logs.stderr[-2000:]}"
    )


def test_compose_runs_headrace_on_postgresql_with_health_checks(tmp_path: Path) -> None:
    compose = podman_compose()
    ensure_podman()
    headrace_image = build_headrace()
    postgres_dir = COMPOSE / "postgres"
    postgres_image = build("headrace-postgres", postgres_dir / "Containerfile", [postgres_dir], context=postgres_dir)

    project = f"hrtest{uuid.uuid4().hex[:8]}"
    port = free_port()
    override = tmp_path / "compose.test.yaml"
    override.write_text(
        yaml.safe_dump(
            {
                "services": {
                    "windmill": {
                        "image": headrace_image,
                        "command": [
                            "dev",
                            "windmill",
                            "--listen",
                            "0.0.0.0:8000",
                            "--token",
                            WINDMILL_TOKEN,
                            "--script",
                            "f/dodo/on_payment",
                        ],
                    }
                }
            }
        )
    )
    # The secret files as env.example says to make them: a 0700 folder, files readable by the container's user.
    secrets = tmp_path / "secrets"
    secrets.mkdir(mode=0o700)
    for name, value in (
        ("headrace_admin_token", ADMIN_TOKEN),
        ("dodo_webhook_secret", SECRET),
        ("windmill_token", WINDMILL_TOKEN),
    ):
        (secrets / name).write_text(value + "\n")
        (secrets / name).chmod(0o644)
    env = {
        **os.environ,
        "HEADRACE_IMAGE": headrace_image,
        "HEADRACE_POSTGRES_IMAGE": postgres_image,
        "HEADRACE_PORT": str(port),
        "HEADRACE_SECRETS": str(secrets),
        "POSTGRES_PASSWORD": "compose-test-pg-password",
        "WINDMILL_URL": "http://windmill:8000/api/w/acme/jobs/run/p/f/dodo/on_payment",
    }
    files = ["-p", project, "-f", str(COMPOSE / "compose.yaml"), "-f", str(override)]

    def run_compose(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [compose, *files, *args], env=env, capture_output=True, text=True, timeout=timeout, check=False
        )

    volumes_before = set(podman("volume", "ls", "--quiet").stdout.split())
    up = run_compose("up", "-d", "--no-build")
    down_done = False
    try:
        assert up.returncode == 0, up.stdout[-3000:] + up.stderr[-3000:]
        names = podman("ps", "-a", "--filter", f"label=io.podman.compose.project={project}", "--format", "{{.Names}}")
        containers = {name.split("_")[1]: name for name in names.stdout.split()}
        assert set(containers) == {"postgres", "headrace", "windmill"}, containers
        wait_healthy(containers["postgres"])
        wait_healthy(containers["headrace"])

        body = dodo_body()
        request = urllib.request.Request(
            f"http://127.0.0.1:{port}/webhooks/dodo", data=body, headers=signed_headers(body, "msg_compose")
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 202

        config = "/etc/headrace/headrace.toml"
        deadline = time.monotonic() + 60
        while True:
            shown = podman("exec", containers["headrace"], "headrace", "event", "msg_compose", "-c", config, "--json")
            detail = json.loads(shown.stdout)
            if detail["status"] == "delivered" or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert detail["status"] == "delivered", detail
        assert detail["deliveries"][0]["windmill_job_id"]
        # Stored in PostgreSQL (UTF-8, which psycopg needs to return text): read with psql in its container.
        encoding = podman("exec", containers["postgres"], "psql", "-U", "headrace", "-tAc", "SHOW server_encoding")
        assert encoding.stdout.strip() == "UTF8"
        rows = podman(
            "exec", containers["postgres"], "psql", "-U", "headrace", "-d", "headrace", "-tAc",
            "SELECT webhook_id FROM events",
        )  # fmt: skip
        assert rows.stdout.split() == ["msg_compose"]

        # Rotate the admin token as documented: rewrite the secret file in place, then SIGHUP.
        new_token = "compose-rotated-admin-token-9876543210fedcba"
        assert metrics_status(port, ADMIN_TOKEN) == 200
        with (secrets / "headrace_admin_token").open("w") as handle:  # truncate and write: the same file
            handle.write(new_token + "\n")
        podman("kill", "--signal", "HUP", containers["headrace"])
        deadline = time.monotonic() + 30
        while metrics_status(port, new_token) != 200 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert metrics_status(port, new_token) == 200 and metrics_status(port, ADMIN_TOKEN) == 401

        down = run_compose("down", timeout=180)  # as documented: keeps the named database volume only
        down_done = down.returncode == 0
        assert down_done, down.stderr[-2000:]
        left = set(podman("volume", "ls", "--quiet").stdout.split()) - volumes_before
        assert left == {f"{project}_postgres-data"}, left  # no anonymous volume
    finally:
        listed = podman("ps", "-aq", "--filter", f"label=io.podman.compose.project={project}", check=False)
        if listed.stdout.split():
            podman("rm", "-f", *listed.stdout.split(), check=False)
        if not down_done:
            run_compose("down", timeout=180)
        podman("volume", "rm", "-f", f"{project}_postgres-data", check=False)
