"""CONTRACT R1 (query parameters), R7 (methods) and A4 (depth): what Windmill does with a request headrace must
therefore never send (docs/windmill-contract.md). headrace's side: tests/unit/test_windmill_urls.py,
tests/unit/test_config.py, tests/integration/test_what_is_sent_to_windmill.py, tests/unit/test_references.py."""

from __future__ import annotations

import json
from typing import Any

from headrace.windmill.emulator import EmulatorState

from .windmill_contract import TOKEN, Answer, Emulator, scenario


def echo_state() -> EmulatorState:
    state = EmulatorState()
    state.resources["u/admin/db"] = {"host": "db.internal"}
    state.add_target("script", "f/dodo/echo", lambda args: args)
    state.add_target("flow", "f/dodo/flow")
    return state


def test_contract_R7_run_routes_answer_405_to_every_method_but_post_and_head() -> None:
    async def body(emu: Emulator) -> None:
        for kind, wait in (("script", False), ("flow", False), ("script", True)):
            url = emu.run_url("f/dodo/echo" if kind == "script" else "f/dodo/flow", kind=kind, wait=wait)
            for method in ("PUT", "PATCH", "DELETE", "GET"):
                async with emu.http.request(method, url, data=b"{}") as response:
                    assert response.status == 405, (method, url)
            async with emu.http.head(url) as response:
                assert response.status == 200
        assert emu.state.jobs == {}  # neither a refused method nor HEAD creates a job

    scenario(echo_state(), body)


def test_contract_R1_raw_or_wrap_body_that_is_not_a_boolean_makes_every_run_500() -> None:
    async def body(emu: Emulator) -> None:
        for query in ({"raw": "1"}, {"wrap_body": "yes"}, {"raw": "True"}):
            answer = await emu.run("f/dodo/echo", {"a": 1}, query=query)
            assert (answer.status, answer.text) == (500, "Internal Server Error"), query
        assert emu.state.jobs == {}

    scenario(echo_state(), body)


def test_contract_R1_raw_true_adds_the_body_text_as_raw_string() -> None:
    async def body(emu: Emulator) -> None:
        answer = await emu.run("f/dodo/echo", raw=b'{"a": 1}', query={"raw": "true"}, wait=True)
        assert answer.status == 200 and answer.json() == {"a": 1, "raw_string": '{"a": 1}'}

    scenario(echo_state(), body)


def test_contract_R1_wrap_body_makes_the_body_one_argument() -> None:
    async def body(emu: Emulator) -> None:
        answer = await emu.run("f/dodo/echo", {"a": 1, "b": 2}, query={"wrap_body": "true"}, wait=True)
        assert answer.status == 200 and answer.json() == {"body": {"a": 1, "b": 2}}

    scenario(echo_state(), body)


def test_contract_R1_include_header_puts_the_bearer_token_into_the_arguments() -> None:
    async def body(emu: Emulator) -> None:
        query = {"include_header": "authorization,X-Request-Id"}
        headers = {"X-Request-Id": "r-1"}
        answer = await emu.run("f/dodo/echo", {"a": 1}, query=query, headers=headers, wait=True)
        assert answer.status == 200
        assert answer.json() == {"a": 1, "authorization": f"Bearer {TOKEN}", "x_request_id": "r-1"}

    scenario(echo_state(), body)


def test_contract_R1_include_query_copies_query_parameters_over_the_body() -> None:
    async def body(emu: Emulator) -> None:
        query = {"include_query": "a,tag", "a": "from-query", "tag": "x"}
        answer = await emu.run("f/dodo/echo", {"a": 1}, query=query, wait=True)
        assert answer.status == 200 and answer.json() == {"a": "from-query", "tag": "x"}

    scenario(echo_state(), body)


def test_contract_R1_queue_limit_does_nothing_on_jobs_run() -> None:
    async def body(emu: Emulator) -> None:
        answers = [await emu.run("f/dodo/echo", {"n": n}, query={"queue_limit": "0"}) for n in range(3)]
        assert [a.status for a in answers] == [201, 201, 201]
        assert sorted(job.args["n"] for job in emu.state.jobs.values()) == [0, 1, 2]

    scenario(echo_state(), body)


def nested(depth: int, leaf: Any) -> Any:
    """`leaf` under `depth` objects: nested(0, x) is x. As an argument the leaf sits at walk depth `depth`."""
    value = leaf
    for _ in range(depth):
        value = {"n": value}
    return value


def test_contract_A4_a_walked_argument_reaching_depth_50_fails_the_job() -> None:
    async def body(emu: Emulator) -> list[Answer]:
        return [
            await emu.run("f/dodo/echo", {"deep": {"ref": "$res:u/admin/db", **nested(49, "x")}}, wait=True),
            await emu.run("f/dodo/echo", {"deep": {"ref": "$res:u/admin/db", **nested(50, "x")}}, wait=True),
            await emu.run("f/dodo/echo", {"deep": [nested(49, "$var:u/a/b")]}, wait=True),
            await emu.run("f/dodo/echo", {"deep": nested(80, "no reference text")}, wait=True),
        ]

    at_49, at_50, in_array, unwalked = scenario(echo_state(), body)
    assert at_49.status == 200 and at_49.json()["deep"]["ref"] == {"host": "db.internal"}
    assert at_50.status == 422
    message = at_50.json()["error"]["message"]
    assert message.startswith("Maximum resource/variable interpolation depth (50) exceeded for `n`"), message
    assert in_array.status == 422 and "depth (50)" in in_array.text  # array item at depth 1, leaf at 50
    assert unwalked.status == 200 and json.dumps(unwalked.json()).count('"n"') == 80  # no trigger: not walked
