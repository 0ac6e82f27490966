"""`headrace dev dodo` and `dev dodo emit`, as processes, and the whole loop on one machine with nothing typed
into a file: `init` -> `connect dodo` against `dev dodo` -> `serve` -> `dev dodo emit payment.succeeded` ->
the event is stored, verified with the secret `connect dodo` wrote, and delivered to `dev windmill`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from headrace.dodo.standin import DEFAULT_API_KEY
from tests.helpers import free_port
from tests.integration.test_contract_dev_windmill import at, process

pytestmark = pytest.mark.slow

CLI = [sys.executable, "-m", "headrace.cli"]


def headrace(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_init_connect_serve_emit_end_to_end(tmp_path: Path) -> None:
    assert headrace("init", "-c", "headrace.toml", cwd=tmp_path).returncode == 0
    config = tmp_path / "headrace.toml"
    windmill_port, dodo_port, server_port = free_port(), free_port(), free_port()
    config.write_text(at(windmill_port, config.read_text()).replace("127.0.0.1:8787", f"127.0.0.1:{server_port}"))
    dodo = f"http://127.0.0.1:{dodo_port}"
    env = {**os.environ, "DODO_PAYMENTS_BASE_URL": dodo, "DODO_PAYMENTS_API_KEY": DEFAULT_API_KEY}
    with (
        process("dev", "windmill", "--listen", f"127.0.0.1:{windmill_port}", port=windmill_port),
        process("dev", "dodo", "--listen", f"127.0.0.1:{dodo_port}", port=dodo_port),
    ):
        before = headrace("dev", "dodo", "emit", "payment.succeeded", "--url", dodo)
        assert before.returncode == 1 and "no enabled endpoint is subscribed" in before.stdout

        ingest = f"http://127.0.0.1:{server_port}/webhooks/dodo"
        connected = headrace(
            "connect", "dodo", "--public-url", ingest, "--api-key", "env:DODO_PAYMENTS_API_KEY", "--mode", "test",
            cwd=tmp_path, env=env,
        )  # fmt: skip
        assert connected.returncode == 0, connected.stdout + connected.stderr
        again = headrace(
            "connect", "dodo", "--public-url", ingest, "--api-key", "env:DODO_PAYMENTS_API_KEY", cwd=tmp_path, env=env
        )
        assert again.returncode == 0 and "up to date" in again.stdout, again.stdout + again.stderr

        with process("serve", "-c", str(config), port=server_port):
            emitted = headrace("dev", "dodo", "emit", "payment.succeeded", "--url", dodo)
            assert emitted.returncode == 0, emitted.stdout + emitted.stderr
            assert f"-> {ingest}: HTTP 2" in emitted.stdout
            webhook_id = emitted.stdout.split("webhook-id ")[1].split()[0]
            refund = headrace("dev", "dodo", "emit", "dunning.started", "--url", dodo)
            assert refund.returncode == 1 and "no enabled endpoint" in refund.stdout, "not subscribed to it"

            listed = headrace("events", "--json", "-c", str(config))
            assert listed.returncode == 0, listed.stderr
            (event,) = [e for e in json.loads(listed.stdout) if e["webhook_id"] == webhook_id]
            assert event["type"] == "payment.succeeded" and event["source"] == "dodo"
            jobs: list[Any] = []
            deadline = time.time() + 30
            while not jobs and time.time() < deadline:
                with urllib.request.urlopen(f"http://127.0.0.1:{windmill_port}/_emulator/jobs", timeout=5) as response:
                    jobs = json.loads(response.read())["jobs"]
                time.sleep(0.1)
            assert [(job["kind"], job["path"]) for job in jobs] == [("flow", "f/dodo/on_payment")]


def test_emit_refusals() -> None:
    unknown = headrace("dev", "dodo", "emit", "payment.succeded")
    assert unknown.returncode == 2 and "payment.succeeded" in unknown.stderr
    gone = headrace("dev", "dodo", "emit", "payment.succeeded", "--url", f"http://127.0.0.1:{free_port()}")
    assert gone.returncode == 2 and "start it: headrace dev dodo" in gone.stderr
    bad = headrace("dev", "dodo", "emit", "payment.succeeded", "--url", "127.0.0.1:8100")
    assert bad.returncode == 2 and "base URL" in bad.stderr


def test_emit_about_a_missing_object_is_refused() -> None:
    port = free_port()
    with process("dev", "dodo", "--listen", f"127.0.0.1:{port}", port=port):
        done = headrace("dev", "dodo", "emit", "payment.succeeded", "--object-id", "pay_nope", "--url",
                        f"http://127.0.0.1:{port}")  # fmt: skip
        assert done.returncode == 2 and "no payments object 'pay_nope'" in done.stderr


@pytest.mark.parametrize("listen", ["8100", "127.0.0.1:0", "127.0.0.1:99999", ":8100"])
def test_dev_dodo_refuses_a_bad_listen(listen: str) -> None:
    done = headrace("dev", "dodo", "--listen", listen)
    assert done.returncode == 2 and "--listen" in done.stderr


def test_seed_stores_objects_without_a_webhook() -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with process("dev", "dodo", "--listen", f"127.0.0.1:{port}", port=port):
        done = headrace("dev", "dodo", "seed", "payments", "--count", "3", "--created-at", "2026-12-01T10:00:00Z",
                        "--event-type", "payment.failed", "--set", "total_amount=1500", "--url", url)  # fmt: skip
        assert done.returncode == 0, done.stderr
        ids = [line.split()[1] for line in done.stdout.splitlines()]
        assert len(ids) == 3 and all(i.startswith("pay_") for i in ids)
        request = urllib.request.Request(
            f"{url}/payments?page_size=100", headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            items = json.loads(response.read())["items"]
        assert sorted(i["payment_id"] for i in items) == sorted(ids)
        assert {(i["status"], i["total_amount"], i["created_at"]) for i in items} == {
            ("failed", 1500, "2026-12-01T10:00:00Z")
        }
        wrong = headrace("dev", "dodo", "seed", "payments", "--event-type", "refund.succeeded", "--url", url)
        assert wrong.returncode == 2 and "not an event about payments" in wrong.stderr
        for bad, words in ((["--count", "0"], "between 1 and 1000"), (["--count", "1001"], "between 1 and 1000"),
                           (["--set", "=1"], "KEY=JSON"), (["--created-at", "soon"], "RFC 3339")):  # fmt: skip
            done = headrace("dev", "dodo", "seed", "refunds", *bad, "--url", url)
            assert done.returncode == 2 and words in done.stderr, done.stderr
        unknown = headrace("dev", "dodo", "seed", "customers", "--url", url)
        assert unknown.returncode == 2 and "one of payments" in unknown.stderr
