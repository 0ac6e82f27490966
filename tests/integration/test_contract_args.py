"""CONTRACT A1-A5: how arguments reach the code (docs/windmill-contract.md). A1-A3 run real Python `main`
functions in kit mode (a subprocess per job, as `headrace dev windmill --kit` does)."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest

from headrace.windmill.emulator import FAKE_JOB_TOKEN, EmulatorState
from headrace.windmill.emulator_kit import load_kit
from headrace.windmill.references import MARK, guard, unguard

from .windmill_contract import Emulator, scenario

pytest.importorskip("yaml")

DB = {"host": "db.internal", "user": "admin", "password": "s3cret"}


def kit_with(folder: Path, scripts: dict[str, str], flows: tuple[str, ...] = ()) -> EmulatorState:
    for name, code in scripts.items():
        (folder / "f" / "t").mkdir(parents=True, exist_ok=True)
        (folder / "f" / "t" / f"{name}.py").write_text(textwrap.dedent(code))
        (folder / "f" / "t" / f"{name}.script.yaml").write_text(f"summary: {name}\nschema: {{}}\n")
    for name in flows:
        (folder / "f" / "t" / f"{name}__flow").mkdir(parents=True)
        flow = "summary: flow\nschema:\n  type: object\n  properties:\n    declared: {type: string}\n"
        (folder / "f" / "t" / f"{name}__flow" / "flow.yaml").write_text(flow + "value: {modules: []}\n")
    state = EmulatorState()
    load_kit(state, folder)
    return state


def run_all(state: EmulatorState, calls: list[tuple[str, dict[str, Any]]], kind: str = "script") -> list[Any]:
    async def body(emu: Emulator) -> list[Any]:
        results = []
        for path, args in calls:
            answer = await emu.run(path, args, kind=kind, wait=True)
            assert answer.status == 200, answer.text
            results.append(answer.json())
        return results

    return scenario(state, body)


def test_contract_A1_only_declared_names_are_passed_and_a_missing_one_is_none(tmp_path: Path) -> None:
    state = kit_with(
        tmp_path,
        {"a1": "def main(a, b=2):\n    return {'a': a, 'b': b}\n"},
    )
    results = run_all(state, [("f/t/a1", {"a": 1, "extra": "dropped"}), ("f/t/a1", {"b": 5})])
    assert results == [{"a": 1, "b": 2}, {"a": None, "b": 5}]


def test_contract_A2_null_for_a_parameter_with_a_default_gets_the_default(tmp_path: Path) -> None:
    state = kit_with(
        tmp_path,
        {"a2": "def main(a=None, currency='USD', required=0):\n    return [a, currency, required]\n"},
    )
    [result] = run_all(state, [("f/t/a2", {"currency": None, "a": 3, "required": None})])
    assert result == [3, "USD", 0]
    state = kit_with(tmp_path / "nodefault", {"a2b": "def main(value):\n    return {'value': value}\n"})
    assert run_all(state, [("f/t/a2b", {"value": None})]) == [{"value": None}]


def test_contract_A3_kwargs_takes_every_key(tmp_path: Path) -> None:
    state = kit_with(
        tmp_path,
        {"a3": "def main(a, b=1, **kwargs):\n    return {'a': a, 'b': b, 'kwargs': kwargs}\n"},
    )
    [result] = run_all(state, [("f/t/a3", {"a": 1, "x": [1], "y": {"z": None}})])
    assert result == {"a": 1, "b": 1, "kwargs": {"x": [1], "y": {"z": None}}}


def test_contract_A5_a_flow_keeps_every_input_declared_or_not(tmp_path: Path) -> None:
    state = kit_with(tmp_path, {}, flows=("a5",))

    async def body(emu: Emulator) -> dict[str, Any]:
        answer = await emu.run("f/t/a5", {"declared": "x", "undeclared": 1}, kind="flow")
        assert answer.status == 201
        await emu.until_completed(answer.text)
        job: dict[str, Any] = (await emu.job(answer.text)).json()
        return job

    job = scenario(state, body)
    assert job["args"] == {"declared": "x", "undeclared": 1}
    assert job["result"] == {"flow_input": {"declared": "x", "undeclared": 1}}


def echo_state() -> EmulatorState:
    state = EmulatorState()
    state.resources["u/admin/db"] = DB
    state.variables["u/admin/api_key"] = "key-123"
    state.variables["u/admin/config"] = '{"retries": 3}'
    state.add_target("script", "f/dodo/echo", lambda args: args)
    return state


def echo(state: EmulatorState, args: dict[str, Any], workspace: str = "acme") -> tuple[int, Any]:
    async def body(emu: Emulator) -> tuple[int, Any]:
        answer = await emu.run("f/dodo/echo", args, wait=True, workspace=workspace)
        return answer.status, answer.json()

    return scenario(state, body)


def test_contract_A4_references_resolve_only_inside_an_argument_that_holds_one() -> None:
    status, seen = echo(
        echo_state(),
        {
            "customer": {"name": "$WM_TOKEN", "db": "$res:u/admin/db", "ws": "$WM_WORKSPACE", "n": "$NOT_RESERVED"},
            "keys": ["$var:u/admin/api_key", "$jsonvar:u/admin/config", "$WM_JOB_ID"],
            "untouched": "$WM_TOKEN",
            "price": "$5.00",
        },
    )
    assert status == 200
    assert seen["customer"] == {"name": FAKE_JOB_TOKEN, "db": DB, "ws": "acme", "n": "$NOT_RESERVED"}
    assert seen["keys"][:2] == ["key-123", {"retries": 3}] and len(seen["keys"][2]) == 36
    assert seen["untouched"] == "$WM_TOKEN" and seen["price"] == "$5.00"  # no $var:/$res:... inside: not walked


def test_contract_A4_arrays_are_walked_to_depth_2_and_1000_items() -> None:
    deep = [[["$WM_WORKSPACE"]]]  # the innermost array is at depth 3: left alone
    status, seen = echo(
        echo_state(),
        {
            "a": {"ref": "$res:u/admin/db", "shallow": [["$WM_WORKSPACE"]], "deep": deep},
            "b": ["$res:u/admin/db", *(["$WM_WORKSPACE"] * 1000)],  # 1001 items: left alone
            "c": ["$res:u/admin/db", *(["$WM_WORKSPACE"] * 999)],  # 1000 items: walked
        },
    )
    assert seen["c"][0] == DB and seen["c"][1:] == ["acme"] * 999
    assert status == 200
    assert seen["a"]["shallow"] == [["acme"]]
    assert seen["a"]["deep"] == [[["$WM_WORKSPACE"]]]
    assert seen["b"][0] == "$res:u/admin/db" and len(seen["b"]) == 1001


def test_contract_A4_a_missing_resource_or_variable_fails_the_job() -> None:
    status, error = echo(echo_state(), {"x": {"db": "$res:u/admin/nothing"}})
    assert status == 422 and error["error"]["message"] == "Resource u/admin/nothing not found for `db`"
    status, error = echo(echo_state(), {"x": "$var:u/admin/nothing"})
    assert status == 422 and "Variable u/admin/nothing not found" in error["error"]["message"]
    status, error = echo(echo_state(), {"x": "$res:db"})  # a resource path needs two segments
    assert status == 422 and error["error"]["message"] == "Argument `x` is an invalid resource path: db"


def dodo_like() -> dict[str, Any]:
    """A Dodo webhook body with customer-typed text that looks like Windmill references."""
    return {
        "business_id": "bus_1",
        "type": "payment.succeeded",
        "data": {
            "payload_type": "Payment",
            "customer": {"name": "$WM_TOKEN", "email": "eve@example.com"},
            "metadata": {"note": "$res:u/admin/db", "plain": "hello"},
            "total_amount": 4999,
        },
    }


def test_contract_A4_an_unguarded_dodo_payload_leaks_and_a_guarded_one_does_not() -> None:
    status, seen = echo(echo_state(), dodo_like())
    assert status == 200
    assert seen["data"]["customer"]["name"] == FAKE_JOB_TOKEN  # the job's token, handed to the script
    assert seen["data"]["metadata"]["note"] == DB  # the database credentials, likewise

    guarded = guard(dodo_like())
    assert guarded["data"]["customer"]["name"] == MARK + "$WM_TOKEN"
    status, seen = echo(echo_state(), guarded)
    assert status == 200
    assert seen == guarded  # nothing resolved
    assert unguard(seen) == dodo_like()  # and the script gets the customer's exact text back


def test_contract_A4_the_leaked_token_is_a_working_bearer_token() -> None:
    _, seen = echo(echo_state(), dodo_like())
    token = seen["data"]["customer"]["name"]

    async def body(emu: Emulator) -> int:
        answer = await emu.run("f/dodo/echo", {}, headers={"Authorization": f"Bearer {token}"})
        return answer.status

    assert scenario(echo_state(), body) == 201


def test_kit_jobs_read_variables_and_resources_through_the_api(tmp_path: Path) -> None:
    code = (
        "import wmill\ndef main():\n"
        "    return [wmill.get_variable('u/admin/api_key'), wmill.get_resource('u/admin/db')]\n"
    )
    state = kit_with(tmp_path, {"reader": code})
    state.variables["u/admin/api_key"] = "key-123"
    state.resources["u/admin/db"] = DB
    assert run_all(state, [("f/t/reader", {})]) == [["key-123", DB]]


def test_contract_A4_a_json_escape_does_not_hide_a_reference() -> None:
    raw = b'{"x": {"db": "\\u0024res:u/admin/db", "who": "\\u0024WM_WORKSPACE"}, "y": "plain"}'

    async def body(emu: Emulator) -> Any:
        answer = await emu.run("f/dodo/echo", raw=raw, wait=True)
        assert answer.status == 200, answer.text
        return answer.json()

    assert scenario(echo_state(), body) == {"x": {"db": DB, "who": "acme"}, "y": "plain"}
