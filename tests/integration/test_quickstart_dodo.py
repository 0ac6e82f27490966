"""Issue 19's "done when", in one test: from an empty directory, against the Windmill emulator and the Dodo
stand-in, `init`, `connect windmill`, `connect dodo`, `serve`, and one payment.succeeded emitted by "Dodo" ends
as a job of the kit's payment flow. Re-running both connects changes nothing, and no DELETE reaches Windmill."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest

from headrace.cli import main
from headrace.config import load
from headrace.dodo.standin import DEFAULT_API_KEY, StandinThread, running_standin
from headrace.windmill.emulator import EmulatorState, EmulatorThread, running_emulator
from tests.helpers import free_port, running_server, wait_for

TOKEN = "wm-quickstart-token-5678"


@pytest.fixture
def windmill() -> Iterator[EmulatorThread]:
    with running_emulator(EmulatorState(tokens={TOKEN})) as emu:
        yield emu


@pytest.fixture
def dodo() -> Iterator[StandinThread]:
    with running_standin() as standin:
        yield standin


def test_init_connect_both_serve_emit_ends_as_a_kit_job(
    windmill: EmulatorThread, dodo: StandinThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WINDMILL_TOKEN", TOKEN)
    monkeypatch.setenv("DODO_PAYMENTS_BASE_URL", dodo.url)
    monkeypatch.setenv("DODO_PAYMENTS_API_KEY", DEFAULT_API_KEY)
    path = tmp_path / "headrace.toml"
    assert main(["init", "-c", str(path)]) == 0
    port = free_port()
    path.write_text(path.read_text("utf-8").replace("127.0.0.1:8787", f"127.0.0.1:{port}"), "utf-8")
    connect_windmill = ["connect", "windmill", "--url", f"http://127.0.0.1:{windmill.port}", "--workspace", "acme",
                        "--token", "env:WINDMILL_TOKEN", "-c", str(path)]  # fmt: skip
    connect_dodo = ["connect", "dodo", "--public-url", f"http://127.0.0.1:{port}/webhooks/dodo",
                    "--api-key", "env:DODO_PAYMENTS_API_KEY", "--mode", "test", "-c", str(path)]  # fmt: skip
    assert main(connect_windmill) == 0
    assert main(connect_dodo) == 0
    (endpoint,) = dodo.state.endpoints.values()
    assert {"payment.succeeded", "subscription.renewed", "dispute.opened", "refund.succeeded"} <= set(
        endpoint.filter_types
    ), "the kit's destinations' events, expanded"
    text = path.read_text("utf-8")
    assert main(connect_windmill) == 0 and main(connect_dodo) == 0
    assert path.read_text("utf-8") == text, "re-running both connects changes nothing"
    assert (dodo.state.count("POST"), dodo.state.count("PATCH")) == (1, 0)

    settings = load(path)
    token = settings.server.admin_token[0].reveal()

    async def run() -> str:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            (delivery,) = await asyncio.to_thread(dodo.emit, "payment.succeeded")
            assert delivery.status is not None and 200 <= delivery.status < 300, delivery

            async def delivered() -> bool:
                async with http.get(
                    f"{base}/api/v1/events/{delivery.webhook_id}", headers={"Authorization": f"Bearer {token}"}
                ) as response:
                    data = await response.json()
                return any(d["status"] == "delivered" for d in data["deliveries"])

            await wait_for(delivered, timeout=30, interval=0.05)
            return delivery.webhook_id

    webhook_id = asyncio.run(run())
    [job] = [job for job in windmill.state.jobs.values() if job.path == "f/dodo/on_payment"]
    assert job.kind == "flow" and job.workspace == "acme"
    assert job.args["webhook_id"] == webhook_id and job.args["event_type"] == "payment.succeeded"
    with urllib.request.urlopen(f"http://127.0.0.1:{windmill.port}/_emulator/deployment", timeout=10) as response:
        seen = json.loads(response.read())["requests"]
    assert seen and all(method != "DELETE" for method, _ in seen)
