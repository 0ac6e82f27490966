"""The API and its OpenAPI document cannot drift: schemathesis reads the document a real `headrace serve` publishes
(on loopback, over a real SQLite store holding delivered, failed, unrouted and refused webhooks), generates valid
and invalid requests for every operation it lists (new endpoints included, without changing this file) and runs
every check: no 5xx, documented status codes, content types and bodies, valid requests accepted, invalid ones
refused, the admin token enforced, unsupported methods answered 405."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis

from headrace.windmill.emulator import running_emulator
from tests.helpers import config_text, deployed_windmill, dodo_body, free_port, signed_headers

pytestmark = pytest.mark.slow

TOKEN = "contract-Adm1n-token-7c2f9e41b"
EXAMPLES = 25  # per operation and phase: enough to find a mismatch, few enough to run in seconds


def _wait_port(port: int, process: subprocess.Popen[str]) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"headrace serve exited with {process.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/api/openapi.json", timeout=1).close()
            return
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"headrace serve is not answering on {port}")


def _send(port: int, body: bytes, headers: dict[str, str]) -> int:
    request = urllib.request.Request(f"http://127.0.0.1:{port}/webhooks/dodo", data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return exc.code


def _get(port: int, path: str) -> Any:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    """`headrace serve` holding: two delivered payments, one failed delivery, one unrouted event, one refusal."""
    tmp = tmp_path_factory.mktemp("contract")
    with running_emulator(deployed_windmill()) as emulator:
        port = free_port()
        broken = emulator.url().replace("f/dodo/on_payment", "f/dodo/not_deployed")
        extra = f"""
[destinations.broken]
source = "dodo"
events = ["payment.failed"]
url = "{broken}"
token = "test-token"
retry_schedule = ["10ms"]
timeout = "2s"
"""
        config = tmp / "h.toml"
        config.write_text(config_text(tmp / "h.db", port, emulator.url(), admin_token=TOKEN) + extra)
        process = subprocess.Popen(
            [sys.executable, "-m", "headrace.cli", "serve", "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            _wait_port(port, process)
            sent = [("msg_paid_1", "payment.succeeded"), ("msg_paid_2", "payment.succeeded")]
            sent += [("msg_failed", "payment.failed"), ("msg_unrouted", "refund.succeeded")]
            for webhook_id, event_type in sent:
                body = dodo_body(event_type)
                assert _send(port, body, signed_headers(body, webhook_id=webhook_id)) == 202
            forged = dodo_body()
            assert _send(port, forged, {**signed_headers(forged, webhook_id="msg_forged"), "webhook-id": "x"}) == 401
            deadline = time.monotonic() + 20
            while {e["status"] for e in _get(port, "/api/v1/events")["events"]} != {"delivered", "failed", "unrouted"}:
                assert time.monotonic() < deadline, _get(port, "/api/v1/events")
                time.sleep(0.1)
            yield port
        finally:
            process.send_signal(signal.SIGTERM)
            _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr[-4000:]
    assert "Traceback" not in stderr, stderr[-4000:]
    assert TOKEN not in stderr


def _contract_run(port: int) -> tuple[list[str], dict[str, int]]:
    """One schemathesis run, as `st run URL --checks all --mode all` with the admin token: the failures found
    (check, operation, message and the curl command that reproduces each) and the test cases run per phase."""
    from schemathesis import engine
    from schemathesis.engine import Status, events

    listed = _get(port, "/api/v1/events")["events"]
    keys = [str(e["id"]) for e in listed] + [e["webhook_id"] for e in listed]
    config = schemathesis.config.SchemathesisConfig.from_dict(
        {
            "seed": 20261127,
            "cache": {"enabled": False},  # nothing written into the working tree
            "headers": {"Authorization": f"Bearer {TOKEN}"},
            "checks": {"enabled": True},
            "generation": {"mode": "all", "max-examples": EXAMPLES, "database": "none"},
            "phases": {"stateful": {"enabled": False}},
            # Stored events for the path's key half the time, generated strings the other half.
            "dictionaries": {"keys": {"values": keys}},
            "parameters": {"path.key": {"dictionary": "keys", "probability": 0.5}},
        }
    )
    schema = schemathesis.openapi.from_url(f"http://127.0.0.1:{port}/api/openapi.json", config=config)
    failures: list[str] = []
    cases: dict[str, int] = {}
    for event in engine.from_schema(schema).execute():
        if isinstance(event, events.NonFatalError):
            failures.append(f"error on {event.label}: {event.info.format()}")
        if isinstance(event, events.FatalError):
            raise event.exception
        if isinstance(event, events.ScenarioFinished):
            cases[event.phase.value] = cases.get(event.phase.value, 0) + len(event.recorder.cases)
            for case_id, checks in event.recorder.checks.items():
                for check in checks:
                    if check.status == Status.FAILURE and check.failure_info is not None:
                        case = event.recorder.cases[case_id].value
                        failures.append(
                            f"{check.name} on {event.recorder.label}: {check.failure_info.failure.title}: "
                            f"{check.failure_info.failure.message}\n    {case.as_curl_command()}"
                        )
    return sorted(set(failures)), cases


def test_the_api_answers_as_its_document_says(server: int) -> None:
    failures, cases = _contract_run(server)
    assert not failures, "\n".join(failures)
    assert cases.get("coverage", 0) > 0 and cases.get("fuzzing", 0) > 0, cases


def test_the_stored_events_reach_every_part_of_the_response_schemas(server: int) -> None:
    """So the run above validated them: a delivery with its Windmill job outcome and attempts, a failed one with
    its error, an unrouted event, a refusal."""
    delivered = _get(server, "/api/v1/events/msg_paid_1")["deliveries"][0]
    assert delivered["job"] is not None and delivered["job"]["state"] in {"open", "success"}
    assert {"notes", "response_excerpt"} <= set(delivered["attempt_log"][0])
    failed = _get(server, "/api/v1/events/msg_failed")["deliveries"][0]
    assert failed["status"] == "failed" and failed["last_error"]
    assert _get(server, "/api/v1/events/msg_unrouted")["deliveries"] == []
    assert _get(server, "/api/v1/rejections")["rejections"]
