"""The Setup page's Dodo step asks Dodo (the stand-in, over loopback HTTP) with the source's api_key whether
headrace's endpoint exists, is enabled and subscribes to every event type the destinations route; it names the
command that fixes it, answers within its timeout when Dodo does not, and never shows the API key."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.check.setup import setup_steps
from headrace.cli import main
from headrace.config import load
from headrace.dodo.api import WebhookEndpoint
from headrace.dodo.connect import MANAGED_BY, SOURCE_KEY
from headrace.dodo.endpoint_state import endpoint_state, routed_types
from headrace.dodo.standin import DEFAULT_API_KEY, StandinState, StandinThread, running_standin
from tests.helpers import free_port, running_server

PUBLIC_URL = "https://hooks.example.com/webhooks/dodo"
STEP = "Dodo endpoint for source dodo"


@pytest.fixture
def standin() -> Iterator[StandinThread]:
    with running_standin(StandinState()) as running:
        yield running


@pytest.fixture
def config(tmp_path: Path, standin: StandinThread, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("DODO_PAYMENTS_BASE_URL", standin.url)
    monkeypatch.setenv("DODO_PAYMENTS_API_KEY", DEFAULT_API_KEY)
    path = tmp_path / "headrace.toml"
    assert main(["init", "-c", str(path)]) == 0
    path.write_text(path.read_text("utf-8").replace("127.0.0.1:8787", f"127.0.0.1:{free_port()}"), "utf-8")
    return path


def connect_dodo(config: Path) -> None:
    argv = ["connect", "dodo", "-c", str(config), "--public-url", PUBLIC_URL, "--mode", "test"]
    assert main([*argv, "--api-key", "env:DODO_PAYMENTS_API_KEY"]) == 0


def dodo_step(config: Path, timeout: float = 5.0) -> Any:
    async def run() -> list[Any]:
        async with aiohttp.ClientSession() as http:
            return await setup_steps(load(config), http, timeout)

    [step] = [s for s in asyncio.run(run()) if s.step.startswith(STEP)]
    assert DEFAULT_API_KEY not in f"{step.detail} {step.fix}"
    return step


def test_without_an_api_key_the_step_says_why_it_cannot_ask(config: Path, standin: StandinThread) -> None:
    step = dodo_step(config)
    assert step.state == "unknown" and "no api_key" in step.detail
    assert step.fix.startswith("headrace connect dodo --source dodo --public-url https://YOUR-HOST/webhooks/dodo")
    assert standin.state.count("GET") == 0


def test_after_connect_dodo_the_step_is_done_and_a_disabled_endpoint_is_broken_until_fixed(
    config: Path, standin: StandinThread
) -> None:
    connect_dodo(config)
    (endpoint,) = standin.state.endpoints.values()
    step = dodo_step(config)
    assert step.state == "done" and endpoint.id in step.detail and step.fix == ""

    endpoint.disabled = True  # what Svix does to an endpoint that failed for days
    step = dodo_step(config)
    assert step.state == "broken" and "DISABLED" in step.detail
    assert f"--public-url {PUBLIC_URL} --api-key env:DODO_PAYMENTS_API_KEY --mode test" in step.fix
    connect_dodo(config)  # the command the step names
    assert not endpoint.disabled and dodo_step(config).state == "done"


def test_an_endpoint_missing_a_routed_event_type_is_todo(config: Path, standin: StandinThread) -> None:
    connect_dodo(config)
    (endpoint,) = standin.state.endpoints.values()
    endpoint.filter_types = ["payment.succeeded"]
    step = dodo_step(config)
    wanted = routed_types(load(config), "dodo")
    assert step.state == "todo" and f"not subscribed to {len(wanted) - 1} event type(s)" in step.detail
    assert "payment.failed" in step.detail and PUBLIC_URL in step.fix


def test_an_endpoint_nobody_marked_is_not_taken_for_headraces(config: Path, standin: StandinThread) -> None:
    connect_dodo(config)
    (endpoint,) = standin.state.endpoints.values()
    endpoint.metadata = {}
    step = dodo_step(config)
    assert step.state == "todo" and "no webhook endpoint in Dodo is marked as headrace's" in step.detail


def test_a_dodo_that_is_down_or_silent_is_unknown_within_the_timeout(
    config: Path, standin: StandinThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect_dodo(config)
    monkeypatch.setenv("DODO_PAYMENTS_BASE_URL", f"http://127.0.0.1:{free_port()}")
    step = dodo_step(config)
    assert step.state == "unknown" and "could not ask Dodo" in step.detail and "cannot connect" in step.detail
    with socket.socket() as silent:  # accepts the connection, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        monkeypatch.setenv("DODO_PAYMENTS_BASE_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        step = dodo_step(config, timeout=0.5)
    assert step.state == "unknown" and "could not ask Dodo" in step.detail


def test_the_console_page_shows_the_dodo_step_without_the_key(
    config: Path, standin: StandinThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    connect_dodo(config)
    settings = load(config)
    admin = {"Authorization": f"Bearer {settings.server.admin_token[0].reveal()}"}

    async def page() -> str:
        async with (
            running_server(settings) as base,
            aiohttp.ClientSession() as http,
            http.get(f"{base}/console/setup", headers=admin) as response,
        ):
            assert response.status == 200
            return await response.text()

    text = asyncio.run(page())
    assert STEP in text and "is enabled and subscribed to every event type" in text
    monkeypatch.setenv("DODO_PAYMENTS_BASE_URL", f"http://127.0.0.1:{free_port()}")
    down = asyncio.run(page())
    row = down.split(STEP)[1].split("</tr>")[0]
    assert 'badge cancelled">unknown' in row and "could not ask Dodo" in row
    assert DEFAULT_API_KEY not in text + down


def marked(id_: str, *, disabled: bool = False, types: tuple[str, ...] = (), source: str = "dodo") -> WebhookEndpoint:
    metadata = {**MANAGED_BY, SOURCE_KEY: source}
    return WebhookEndpoint(id_, PUBLIC_URL, "", metadata, disabled, types)


def test_endpoint_state_prefers_an_enabled_endpoint_and_reads_an_empty_filter_as_every_type() -> None:
    wanted = ["payment.succeeded", "refund.succeeded"]
    state = endpoint_state([marked("ep_off", disabled=True), marked("ep_on")], "dodo", wanted)
    assert state.condition == "ok" and state.endpoint is not None and state.endpoint.id == "ep_on"
    assert [e.id for e in state.others] == ["ep_off"]
    state = endpoint_state([marked("ep_1", types=("payment.succeeded",))], "dodo", wanted)
    assert state.condition == "incomplete" and state.missing_types == ("refund.succeeded",)
    assert endpoint_state([marked("ep_2", source="shop")], "dodo", wanted).condition == "missing"
    assert endpoint_state([marked("ep_3", disabled=True)], "dodo", wanted).condition == "disabled"
