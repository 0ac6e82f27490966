"""CONTRACT D1-D8, C4 (and R3, M1 for deployed versions): the emulator's deployment API, what `wmill sync push`
and `headrace connect windmill` call."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

from headrace.windmill import deploy_routes as routes
from headrace.windmill import urls
from headrace.windmill.emulator import EmulatorState
from headrace.windmill.emulator_deploy import BUILT_LOCK

from .windmill_contract import Answer, Emulator, scenario

SCRIPT = "def main(x: int = 1):\n    return {'doubled': x * 2}\n"


async def post(emu: Emulator, route: Any, body: Any, query: str = "", **parts: str) -> Answer:
    parts.setdefault("workspace", "acme")
    async with emu.http.post(route.build(emu.base, **parts) + query, json=body) as response:
        return Answer(response.status, await response.text())


def _script(path: str = "f/dodo/double", content: str = SCRIPT, **extra: Any) -> dict[str, Any]:
    return {
        "path": path,
        "summary": "double",
        "description": "",
        "content": content,
        "language": "python3",
        "schema": {"type": "object", "properties": {"x": {"type": "integer"}}},
        "lock": "",
        "kind": "script",
        **extra,
    }


async def _configure(emu: Emulator, **spec: Any) -> dict[str, Any]:
    async with emu.http.post(emu.base.removesuffix("/api") + "/_emulator/deployment", json=spec) as response:
        result: dict[str, Any] = await response.json()
        return result


async def _until_built(emu: Emulator, hash_: str) -> dict[str, Any]:
    while True:
        status: dict[str, Any] = (await emu.get(routes.SCRIPT_STATUS, hash=hash_)).json()
        if status["lock"] is not None or status["lock_error_logs"] is not None:
            return status
        await asyncio.sleep(0.02)


def test_contract_D1_whoami_says_who_and_whether_an_operator() -> None:
    async def body(emu: Emulator) -> None:
        me = (await emu.get(routes.WHOAMI)).json()
        assert me["operator"] is False and me["is_admin"] is True and me["email"]
        emu.state.tokens.add("operator-token")
        await _configure(emu, operators=["operator-token"])
        headers = {"Authorization": "Bearer operator-token"}
        me = (await emu.get(routes.WHOAMI, headers=headers)).json()
        assert me["operator"] is True and me["is_admin"] is False
        async with emu.http.post(
            routes.SCRIPT_CREATE.build(emu.base, workspace="acme"), json=_script(), headers=headers
        ) as response:
            assert response.status == 401
        async with emu.http.post(
            routes.FLOW_CREATE.build(emu.base, workspace="acme"),
            json={"path": "f/dodo/f", "value": {}},
            headers=headers,
        ) as response:
            assert response.status == 401
        unauthenticated = await emu.get(routes.WHOAMI, headers={"Authorization": "Bearer nope"})
        assert unauthenticated.status == 401

    scenario(EmulatorState(), body)


def test_contract_D2_folders_exist_once_and_names_are_checked() -> None:
    async def body(emu: Emulator) -> None:
        assert (await emu.get(routes.FOLDER_EXISTS, name="dodo")).json() is False
        created = await post(
            emu, routes.FOLDER_CREATE, {"name": "dodo", "summary": "s", "owners": [], "extra_perms": {}}
        )
        assert created.status == 200
        assert (await emu.get(routes.FOLDER_EXISTS, name="dodo")).json() is True
        assert (await emu.get(routes.FOLDER_EXISTS, name="dodo", workspace="other")).json() is False
        again = await post(emu, routes.FOLDER_CREATE, {"name": "dodo"})
        assert again.status == 400 and "already exists" in again.text
        bad = await post(emu, routes.FOLDER_CREATE, {"name": "do-do"})
        assert bad.status == 400

    scenario(EmulatorState(), body)


def test_contract_D3_variables_create_once_update_and_resolve() -> None:
    async def body(emu: Emulator) -> None:
        spec = {"path": "f/dodo/pw", "value": "s3cret", "is_secret": True, "description": "d"}
        assert (await emu.get(routes.VARIABLE_EXISTS, path="f/dodo/pw")).json() is False
        assert (await post(emu, routes.VARIABLE_CREATE, spec)).status == 201
        assert (await emu.get(routes.VARIABLE_EXISTS, path="f/dodo/pw")).json() is True
        assert (await post(emu, routes.VARIABLE_CREATE, spec)).status == 400
        assert (await post(emu, routes.VARIABLE_UPDATE, {"value": "new"}, path="f/dodo/pw")).status == 200
        assert (await emu.get(routes.VARIABLE_GET, path="f/dodo/pw")).json()["is_secret"] is True
        assert emu.state.variables["f/dodo/pw"] == "new"
        assert (await post(emu, routes.VARIABLE_UPDATE, {"value": "x"}, path="f/dodo/none")).status == 404

    scenario(EmulatorState(), body)


def test_contract_D4_resources_create_once_unless_update_if_exists() -> None:
    async def body(emu: Emulator) -> None:
        spec = {"path": "f/dodo/db", "value": {"password": "$var:f/dodo/pw"}, "resource_type": "postgresql"}
        assert (await post(emu, routes.RESOURCE_CREATE, spec)).status == 201
        assert (await post(emu, routes.RESOURCE_CREATE, spec)).status == 400
        changed = {**spec, "value": {"password": "$var:f/dodo/other"}}
        assert (await post(emu, routes.RESOURCE_CREATE, changed, "?update_if_exists=true")).status == 201
        assert (await emu.get(routes.RESOURCE_GET, path="f/dodo/db")).json()["value"] == changed["value"]
        assert (await emu.get(routes.RESOURCE_EXISTS, path="f/dodo/db")).json() is True
        assert (await emu.get(routes.RESOURCE_EXISTS, path="f/dodo/nope")).json() is False
        await post(emu, routes.VARIABLE_CREATE, {"path": "f/dodo/other", "value": "pw", "is_secret": True})
        read = await emu.get(urls.RESOURCE_VALUE, path="f/dodo/db")
        assert read.json() == {"password": "pw"}  # "$var:" resolved when the resource is read

    scenario(EmulatorState(), body)


def test_contract_C4_only_postgres_and_slack_types_are_seeded() -> None:
    async def body(emu: Emulator) -> None:
        for name, exists in (("postgres", True), ("slack", True), ("postgresql", False), ("smtp", False)):
            assert (await emu.get(routes.RESOURCE_TYPE_EXISTS, name=name)).json() is exists, name
        assert (await post(emu, routes.RESOURCE_TYPE_CREATE, {"name": "postgresql", "schema": {}})).status == 201
        assert (await emu.get(routes.RESOURCE_TYPE_EXISTS, name="postgresql")).json() is True
        assert (await post(emu, routes.RESOURCE_TYPE_CREATE, {"name": "postgresql", "schema": {}})).status == 400

    scenario(EmulatorState(), body)


def test_contract_D5_scripts_create_parent_rules_and_skip_if_noop() -> None:
    async def body(emu: Emulator) -> None:
        first = await post(emu, routes.SCRIPT_CREATE, _script())
        assert first.status == 201
        conflict = await post(emu, routes.SCRIPT_CREATE, _script(content=SCRIPT + "# v2\n"))
        assert conflict.status == 400 and "Path conflict" in conflict.text
        missing = await post(emu, routes.SCRIPT_CREATE, _script(content=SCRIPT + "# v2\n", parent_hash="nope"))
        assert missing.status == 400
        await _until_built(emu, first.text)
        # identical content, but `lock: ""` is not the built lock: a new version
        relocked = await post(emu, routes.SCRIPT_CREATE, _script(parent_hash=first.text), "?skip_if_noop=true")
        assert relocked.status == 201 and relocked.text != first.text
        await _until_built(emu, relocked.text)
        same = _script(parent_hash=relocked.text, lock=BUILT_LOCK)
        noop = await post(emu, routes.SCRIPT_CREATE, same, "?skip_if_noop=true")
        assert noop.status == 201 and noop.text == relocked.text
        auto = await post(emu, routes.SCRIPT_CREATE, _script(content=SCRIPT + "# v3\n", auto_parent=True))
        assert auto.status == 201 and auto.text not in (first.text, relocked.text)
        versions = emu.state.versions("acme", "script", "f/dodo/double")
        assert len(versions) == 3 and [v.archived for v in versions] == [True, True, False]  # M1: parents archived

    scenario(EmulatorState(), body)


def test_contract_D6_R3_a_deployed_script_runs_only_once_its_lock_is_built() -> None:
    async def body(emu: Emulator) -> None:
        await _configure(emu, lock_seconds=0.5)
        created = await post(emu, routes.SCRIPT_CREATE, _script())
        status = (await emu.get(routes.SCRIPT_STATUS, hash=created.text)).json()
        assert status["lock"] is None and status["lock_error_logs"] is None and status["job_id"]
        definition = (await emu.get(routes.SCRIPT_GET, path="f/dodo/double")).json()
        assert "lock" not in definition  # M1: absent while building, not null
        assert (await emu.run("f/dodo/double", {"x": 2})).status == 404
        built = await _until_built(emu, created.text)
        assert built["lock"] == BUILT_LOCK and built["lock_error_logs"] is None
        answer = await emu.run("f/dodo/double", {"x": 21})
        assert answer.status == 201
        assert (await emu.until_completed(answer.text))["result"] == {"doubled": 42}
        assert (await emu.get(routes.SCRIPT_GET, path="f/dodo/double")).json()["lock"] == BUILT_LOCK

    scenario(EmulatorState(), body)


def test_contract_D6_a_failed_lock_has_its_error_and_never_runs() -> None:
    async def body(emu: Emulator) -> None:
        await _configure(emu, lock_errors={"f/dodo/broken": "pip: no matching distribution for nosuchpkg"})
        created = await post(emu, routes.SCRIPT_CREATE, _script("f/dodo/broken"))
        status = await _until_built(emu, created.text)
        assert status["lock"] is None and "nosuchpkg" in status["lock_error_logs"]
        assert (await emu.run("f/dodo/broken", {})).status == 404
        assert (await emu.get(routes.SCRIPT_STATUS, hash="0000")).status == 404

    scenario(EmulatorState(), body)


def test_contract_D10_what_connect_reads_back_shows_the_description_and_the_hash() -> None:
    """connect windmill tells its own items from someone else's by the description they were created with, and
    waits for a building script's lock by the `hash` scripts/get shows."""

    async def body(emu: Emulator) -> None:
        created = await post(emu, routes.SCRIPT_CREATE, _script(description="mine: made by a tool"))
        shown = (await emu.get(routes.SCRIPT_GET, path="f/dodo/double")).json()
        assert shown["hash"] == created.text and shown["description"] == "mine: made by a tool"
        flow = {"path": "f/dodo/on_x", "summary": "s", "description": "flow by a tool", "value": {"modules": []}}
        await post(emu, routes.FLOW_CREATE, flow)
        assert (await emu.get(routes.FLOW_GET, path="f/dodo/on_x")).json()["description"] == "flow by a tool"
        variable = {"path": "f/dodo/pw", "value": "s3cret", "is_secret": True, "description": "var by a tool"}
        await post(emu, routes.VARIABLE_CREATE, variable)
        assert (await emu.get(routes.VARIABLE_GET, path="f/dodo/pw")).json()["description"] == "var by a tool"
        resource = {"path": "f/dodo/db", "value": {"host": "h"}, "resource_type": "postgresql", "description": "res"}
        await post(emu, routes.RESOURCE_CREATE, resource)
        read = (await emu.get(routes.RESOURCE_GET, path="f/dodo/db")).json()
        assert read["description"] == "res" and read["value"] == {"host": "h"}

    scenario(EmulatorState(), body)


def test_contract_D7_flows_create_update_and_their_lock() -> None:
    async def body(emu: Emulator) -> None:
        await _configure(emu, lock_seconds=0.3)
        flow = {"path": "f/dodo/on_x", "summary": "s", "value": {"modules": [{"id": "a"}]}, "schema": {}}
        assert (await emu.get(routes.FLOW_EXISTS, path="f/dodo/on_x")).json() is False
        assert (await post(emu, routes.FLOW_CREATE, flow)).status == 201
        assert (await post(emu, routes.FLOW_CREATE, flow)).status == 400
        assert (await emu.get(routes.FLOW_STATUS, path="f/dodo/on_x")).json()["lock_error_logs"] == ""
        shown = (await emu.get(routes.FLOW_GET, path="f/dodo/on_x")).json()
        assert shown["value"] == flow["value"] and shown["lock_error_logs"] == ""
        while True:
            if (await emu.get(routes.FLOW_STATUS, path="f/dodo/on_x")).json()["lock_error_logs"] is None:
                break
            await asyncio.sleep(0.02)
        assert "lock_error_logs" not in (await emu.get(routes.FLOW_GET, path="f/dodo/on_x")).json()
        changed = {**flow, "value": {"modules": []}}
        assert (await post(emu, routes.FLOW_UPDATE, changed, path="f/dodo/on_x")).status == 200
        assert (await emu.get(routes.FLOW_GET, path="f/dodo/on_x")).json()["value"] == {"modules": []}
        assert (await post(emu, routes.FLOW_UPDATE, changed, path="f/dodo/none")).status == 404
        answer = await emu.run("f/dodo/on_x", {"a": 1}, kind="flow")  # R9: a flow runs right away
        assert answer.status == 201

    scenario(EmulatorState(), body)


def test_contract_D8_exists_counts_only_live_script_versions() -> None:
    async def body(emu: Emulator) -> None:
        assert (await emu.get(routes.SCRIPT_EXISTS, path="f/dodo/double")).json() is False
        await post(emu, routes.SCRIPT_CREATE, _script())
        assert (await emu.get(routes.SCRIPT_EXISTS, path="f/dodo/double")).json() is True
        for version in emu.state.versions("acme", "script", "f/dodo/double"):
            version.archived = True
        assert (await emu.get(routes.SCRIPT_EXISTS, path="f/dodo/double")).json() is False

    scenario(EmulatorState(), body)


def test_every_request_is_recorded_delete_included() -> None:
    async def body(emu: Emulator) -> None:
        async with emu.http.delete(emu.base + "/w/acme/resources/delete/f/dodo/db") as response:
            assert response.status in (404, 405)
        seen = (await _configure(emu))["requests"]
        assert ["DELETE", "/api/w/acme/resources/delete/f/dodo/db"] in seen

    state = EmulatorState()
    scenario(state, body)


def test_every_test_the_deployment_contract_names_exists() -> None:
    root = Path(__file__).resolve().parents[2]
    doc = (root / "docs" / "windmill-contract.md").read_text("utf-8")
    rows = [line for line in doc.splitlines() if re.match(r"^\| (D\d+|S1) \|", line)]
    assert len(rows) == 11
    named = {name for row in rows for name in re.findall(r"`(test_\w+)`", row.rsplit("|", 2)[-2])}
    defined = {
        name
        for path in root.joinpath("tests").rglob("test_*.py")
        for name in re.findall(r"def (test_\w+)", path.read_text("utf-8"))
    }
    assert named and named <= defined, sorted(named - defined)
