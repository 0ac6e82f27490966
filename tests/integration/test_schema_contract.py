"""Schema preflight follows how arguments reach the code (CONTRACT A2, A3, A5): with schema = "enforce", a null
for a parameter with a default, undeclared keys for a flow, and every key for a Python main(**kwargs) are sent."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from headrace.windmill.client import WindmillClient
from headrace.windmill.emulator import EmulatorState, EmulatorThread, running_emulator
from headrace.windmill.urls import parse_run_url
from tests.helpers import dodo_body
from tests.integration.test_outcomes import SCHEMA, run_with, send, settings, until

DATA_ONLY = {"type": "object", "properties": {"data": {"type": "object"}}, "required": ["data"]}


def test_a_flow_gets_undeclared_inputs_under_enforce(tmp_path: Path) -> None:
    state = EmulatorState()
    state.add_target("flow", "f/dodo/on_payment", lambda args: sorted(args), schema=DATA_ONLY)

    async def scenario(emu: EmulatorThread) -> None:
        async with running(tmp_path, emu.url(kind="f")) as base:
            await send(base, "msg_flow")
            data = await until(base, "msg_flow", lambda d: d["status"] in ("delivered", "failed"))
        assert data["status"] == "delivered", data["deliveries"][0]["last_error"]
        [job] = emu.state.jobs.values()
        assert sorted(job.args) == ["business_id", "data", "timestamp", "type"]  # A5: flow_input holds them all

    run_with(state, scenario)


def test_null_for_a_parameter_with_a_default_is_sent_under_enforce(tmp_path: Path) -> None:
    schema = {**SCHEMA, "properties": {**SCHEMA["properties"], "currency": {"type": "string", "default": "USD"}}}
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", schema=schema)
    body = dodo_body()[:-1] + b', "currency": null}'

    async def scenario(emu: EmulatorThread) -> None:
        async with running(tmp_path, emu.url()) as base:
            await send(base, "msg_null", body)
            data = await until(base, "msg_null", lambda d: d["status"] in ("delivered", "failed"))
        assert data["status"] == "delivered", data["deliveries"][0]["last_error"]

    run_with(state, scenario)


def test_a_kwargs_script_is_known_to_take_every_key() -> None:
    def main(content: str) -> bool:
        state = EmulatorState()
        state.add_target("script", "f/dodo/on_payment", schema=DATA_ONLY, content=content)  # M2: its source

        async def look(url: str) -> bool:
            async with aiohttp.ClientSession() as http:
                info = await WindmillClient(http).get_target(parse_run_url(url)[0], "test-token")
            assert info.found
            return info.keeps_undeclared

        with running_emulator(state) as emu:
            return asyncio.run(look(emu.url()))

    assert main("def main(data: dict, **kwargs):\n    return kwargs\n") is True
    assert main("def main(data: dict):\n    return data\n") is False


def running(tmp_path: Path, url: str, extra: str = "") -> Any:
    from tests.helpers import running_server

    return running_server(settings(tmp_path, url, extra))
