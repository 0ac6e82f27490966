"""CONTRACT R1-R5 and M1: creating a job, and what a target looks like (docs/windmill-contract.md)."""

from __future__ import annotations

import re
import uuid

import aiohttp

from headrace.windmill import deploy_routes, urls
from headrace.windmill.emulator import EmulatorState, Token, build_app
from tests.helpers import wait_for

from .windmill_contract import Emulator, scenario


def deployed(*scripts: str, flows: tuple[str, ...] = (), **options: object) -> EmulatorState:
    state = EmulatorState()
    for path in scripts:
        state.add_target("script", path, lambda args: args, **options)
    for path in flows:
        state.add_target("flow", path, **options)
    return state


def test_contract_R1_run_answers_201_with_the_job_uuid_as_plain_text() -> None:
    async def body(emu: Emulator) -> None:
        for kind in ("script", "flow"):
            answer = await emu.run("f/dodo/x", {"a": 1}, kind=kind)
            assert answer.status == 201
            assert str(uuid.UUID(answer.text)) == answer.text
            assert emu.state.jobs[answer.text].args == {"a": 1}

    scenario(deployed("f/dodo/x", flows=("f/dodo/x",)), body)


def test_contract_R1_a_body_that_is_not_an_object_is_wrapped_as_body() -> None:
    async def body(emu: Emulator) -> None:
        for value in ([1, 2], "text", 7, None):
            answer = await emu.run("f/dodo/x", value)
            assert answer.status == 201, answer.text
            assert emu.state.jobs[answer.text].args == ({} if value is None else {"body": value})

    scenario(deployed("f/dodo/x"), body)


def test_contract_R1_the_wrap_rule_is_by_first_byte_and_an_empty_body_needs_no_content_type() -> None:
    """args.rs from_json: `{` first is an object; anything else (leading whitespace, a BOM) is parsed whole and
    wrapped; an empty body is `{}` only without a Content-Type; a body must be UTF-8."""

    async def body(emu: Emulator) -> None:
        async def send(data: bytes, content_type: str | None) -> tuple[int, str]:
            headers = {} if content_type is None else {"Content-Type": content_type}
            async with emu.http.post(
                emu.run_url("f/dodo/x"), data=data, headers=headers, skip_auto_headers=("Content-Type",)
            ) as response:
                return response.status, await response.text()

        for data, content_type, args in (
            (b'{"a": 1}', "application/json", {"a": 1}),
            (b' {"a": 1}', "application/json", {"body": {"a": 1}}),
            (b'\n{"a": 1}', None, {"body": {"a": 1}}),
            (b"null", "application/json", {"body": None}),
            (b"", None, {}),
        ):
            status, text = await send(data, content_type)
            assert status == 201, (data, text)
            assert emu.state.jobs[text].args == args, data
        for data, content_type, says in (
            (b"", "application/json", "invalid json"),
            (b"  ", None, "invalid json"),
            (b'\xef\xbb\xbf{"a": 1}', "application/json", "invalid json"),
            (b'{"a": "\xff"}', "application/json", "invalid utf8"),
            (b'{"a": 1', "application/json", "invalid json"),
        ):
            status, text = await send(data, content_type)
            assert (status, says in text) == (400, True), (data, text)
        assert len(emu.state.jobs) == 5

    scenario(deployed("f/dodo/x"), body)


def test_contract_R1_unknown_query_parameters_are_ignored() -> None:
    async def body(emu: Emulator) -> None:
        answer = await emu.run("f/dodo/x", {"a": 1}, query={"tag": "x", "whatever": "1"})
        assert answer.status == 201
        assert emu.state.jobs[answer.text].args == {"a": 1}

    scenario(deployed("f/dodo/x"), body)


def test_contract_R2_a_job_id_taken_in_any_workspace_queued_or_completed_is_400() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/slow", delay=5.0)
    state.add_target("script", "f/dodo/fast")

    async def body(emu: Emulator) -> None:
        queued, completed = str(uuid.uuid4()), str(uuid.uuid4())
        assert (await emu.run("f/dodo/slow", job_id=queued, workspace="staging")).status == 201
        assert (await emu.run("f/dodo/fast", job_id=completed, workspace="staging")).status == 201
        assert emu.state.jobs[queued].completed is False and emu.state.jobs[completed].completed is True
        for job_id in (queued, completed):
            for workspace in ("staging", "production"):
                answer = await emu.run("f/dodo/fast", job_id=job_id, workspace=workspace)
                assert answer.status == 400
                assert f"Job with id {job_id} already exists" in answer.text
        assert len(emu.state.jobs) == 2 and emu.state.duplicate_rejections == 4

    scenario(state, body)


def test_contract_R3_an_undeployed_path_is_404_for_runs_and_definitions_alike() -> None:
    async def body(emu: Emulator) -> None:
        for kind, route in (("script", urls.SCRIPT), ("flow", urls.FLOW)):
            for wait in (False, True):
                answer = await emu.run("f/dodo/nothing", kind=kind, wait=wait)
                assert answer.status == 404 and f"{kind} not found at name f/dodo/nothing" in answer.text
            assert (await emu.get(route, path="f/dodo/nothing")).status == 404
        assert emu.state.jobs == {}

    scenario(EmulatorState(), body)


def test_contract_R3_a_target_deployed_in_one_workspace_is_404_in_another() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/x", workspace="acme")

    async def body(emu: Emulator) -> None:
        assert (await emu.run("f/dodo/x", workspace="acme")).status == 201
        assert (await emu.run("f/dodo/x", workspace="other")).status == 404
        assert (await emu.get(urls.SCRIPT, workspace="other", path="f/dodo/x")).status == 404

    scenario(state, body)


def test_contract_R3_new_script_answers_404_until_its_lock_is_built() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/by_requests", lock_requests=2)
    state.add_target("script", "f/dodo/by_time", lock_seconds=0.4)

    async def body(emu: Emulator) -> None:
        for _ in range(2):
            shown = await emu.get(urls.SCRIPT, path="f/dodo/by_requests")  # M1: the newest row, lock or not
            assert shown.status == 200 and "lock" not in shown.json()  # absent, not null
            answer = await emu.run("f/dodo/by_requests")
            assert answer.status == 404 and "script not found at name f/dodo/by_requests" in answer.text
        assert (await emu.run("f/dodo/by_requests")).status == 201
        assert (await emu.run("f/dodo/by_time")).status == 404

        async def locked() -> bool:  # the lock builds in its own time: wait for it, however loaded the machine
            return "lock" in (await emu.get(urls.SCRIPT, path="f/dodo/by_time")).json()

        await wait_for(locked, 10)
        assert (await emu.run("f/dodo/by_time")).status == 201
        assert (await emu.get(urls.SCRIPT, path="f/dodo/by_time")).json()["lock"] is not None

    scenario(state, body)


def test_contract_R3_the_previous_version_runs_while_the_new_lock_builds_or_after_it_fails() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/x", lambda args: "v1", schema={"properties": {"v1": {}}})
    state.add_target("script", "f/dodo/x", lambda args: "v2", lock_error="pip: no matching distribution")
    state.add_target("script", "f/dodo/x", lambda args: "v3", lock_seconds=60, schema={"properties": {"v3": {}}})

    async def body(emu: Emulator) -> None:
        answer = await emu.run("f/dodo/x", wait=True)
        assert answer.status == 200 and answer.json() == "v1"
        shown = (await emu.get(urls.SCRIPT, path="f/dodo/x")).json()
        assert shown["schema"] == {"properties": {"v3": {}}}  # M1: it shows a version that does not run yet

    scenario(state, body)


def test_contract_R4_archived_and_draft_only_targets_still_run_by_path() -> None:
    state = EmulatorState()
    for kind in ("script", "flow"):
        state.add_target(kind, "f/dodo/archived", archived=True)
        state.add_target(kind, "f/dodo/draft", draft_only=True)

    async def body(emu: Emulator) -> None:
        for kind in ("script", "flow"):
            for path in ("f/dodo/archived", "f/dodo/draft"):
                assert (await emu.run(path, kind=kind)).status == 201, (kind, path)
                assert (await emu.run(path, kind=kind, wait=True)).status == 200, (kind, path)

    scenario(state, body)


def test_contract_R4_a_deleted_script_does_not_run() -> None:
    state = EmulatorState()
    state.add_target("script", "f/dodo/gone", deleted=True)

    async def body(emu: Emulator) -> None:
        assert (await emu.run("f/dodo/gone")).status == 404
        shown = await emu.get(urls.SCRIPT, path="f/dodo/gone")
        assert shown.status == 200 and shown.json()["deleted"] is True

    scenario(state, body)


def test_contract_R5_bearer_then_cookie_then_query_token() -> None:
    async def body(emu: Emulator) -> None:
        url = emu.run_url("f/dodo/x")
        cases = [
            ({"Authorization": "Bearer test-token"}, "", 201),
            ({"Authorization": "Bearer wrong"}, "?token=test-token", 401),  # the header wins
            ({"Cookie": "token=test-token"}, "?token=wrong", 201),  # the cookie comes before the query
            ({"Cookie": "token=wrong"}, "?token=test-token", 401),
            ({}, "?token=test-token", 201),
            ({}, "?token=wrong", 401),
            ({}, "", 401),
        ]
        for headers, query, expected in cases:
            async with aiohttp.ClientSession() as anonymous, anonymous.post(url + query, json={}, headers=headers) as r:
                assert r.status == expected, (headers, query, await r.text())

    scenario(deployed("f/dodo/x"), body)


def test_contract_R5_a_token_without_access_to_the_path_is_401_but_it_exists() -> None:
    state = deployed("f/dodo/x", "f/other/y")
    state.add_token(Token("limited", paths=("f/other/",)))

    async def body(emu: Emulator) -> None:
        limited = {"Authorization": "Bearer limited"}
        answer = await emu.run("f/dodo/x", headers=limited)
        assert answer.status == 401 and "(but it exists)" in answer.text
        shown = await emu.get(urls.SCRIPT, path="f/dodo/x", headers=limited)
        assert shown.status == 401 and "(but it exists)" in shown.text
        assert (await emu.run("f/dodo/missing", headers=limited)).status == 404
        assert (await emu.run("f/other/y", headers=limited)).status == 201

    scenario(state, body)


def test_contract_R5_a_token_of_another_workspace_is_401_and_a_missing_scope_is_403() -> None:
    state = deployed("f/dodo/x")
    state.add_token(Token("acme-only", workspaces=frozenset({"acme"})))
    state.add_token(Token("read-only", scopes=frozenset({"jobs:read", "scripts:read"})))

    async def body(emu: Emulator) -> None:
        assert (await emu.run("f/dodo/x", headers={"Authorization": "Bearer acme-only"})).status == 201
        other = await emu.run("f/dodo/x", workspace="other", headers={"Authorization": "Bearer acme-only"})
        assert other.status == 401
        scoped = await emu.run("f/dodo/x", headers={"Authorization": "Bearer read-only"})
        assert scoped.status == 403 and "jobs:run" in scoped.text
        shown = await emu.get(urls.SCRIPT, path="f/dodo/x", headers={"Authorization": "Bearer read-only"})
        assert shown.status == 200

    scenario(state, body)


def test_contract_M1_definitions_carry_schema_archived_draft_only_and_deleted() -> None:
    schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]}
    state = EmulatorState()
    state.add_target("script", "f/dodo/s", schema=schema, archived=True, draft_only=True)
    state.add_target("flow", "f/dodo/plain", schema=schema)
    state.add_target("flow", "f/dodo/draft", schema=schema, draft_only=True)

    async def body(emu: Emulator) -> None:
        script = (await emu.get(urls.SCRIPT, path="f/dodo/s")).json()
        assert script["schema"] == schema and script["archived"] is True
        assert script["draft_only"] is True and script["deleted"] is False
        plain = (await emu.get(urls.FLOW, path="f/dodo/plain")).json()
        assert plain["schema"] == schema and plain["archived"] is False and "draft_only" not in plain
        assert (await emu.get(urls.FLOW, path="f/dodo/draft")).json()["draft_only"] is True

    scenario(state, body)


def test_contract_M2_a_script_definition_carries_its_language_and_source() -> None:
    source = "def main(data: dict, **kwargs):\n    return kwargs\n"
    state = EmulatorState()
    state.add_target("script", "f/dodo/kw", content=source)

    async def body(emu: Emulator) -> None:
        script = (await emu.get(urls.SCRIPT, path="f/dodo/kw")).json()
        assert script["language"] == "python3" and script["content"] == source

    scenario(state, body)


def test_accept_any_path_deploys_a_path_for_runs_and_definitions_alike() -> None:
    async def body(emu: Emulator) -> None:
        shown = await emu.get(urls.FLOW, path="f/any/thing")
        assert shown.status == 200 and shown.json()["schema"] is None
        assert (await emu.run("f/any/other", kind="flow")).status == 201
        assert (await emu.get(urls.FLOW, path="f/any/other")).status == 200

    scenario(EmulatorState(any_path=True), body)


def test_the_emulator_answers_exactly_the_routes_the_client_builds() -> None:
    app = build_app(EmulatorState())
    served = {resource.canonical for resource in app.router.resources() if resource.canonical.startswith("/api/")}
    deployment = deploy_routes.GETS + deploy_routes.POSTS  # D1-D8: what `connect windmill` calls
    assert served == {_canonical(route) for route in urls.ROUTES + deployment}
    target, _ = urls.parse_run_url("http://127.0.0.1:1/api/w/acme/jobs/run/p/f/dodo/x")
    for url in (target.run_url, target.job_url("1"), target.result_url("1"), target.definition_url):
        path = url.removeprefix("http://127.0.0.1:1")
        assert any(_matches(route, path) for route in urls.ROUTES), url


def _canonical(route: urls.Route) -> str:
    return "/api" + re.sub(r"\{(\w+)\}", r"{\1}", route.template)


def _matches(route: urls.Route, path: str) -> bool:
    regex = re.escape("/api" + route.template)
    for name in re.findall(r"\{(\w+)\}", route.template):
        choices = dict(route.choices).get(name, ".+" if name == "path" else "[^/]+")
        regex = regex.replace(re.escape("{" + name + "}"), f"(?:{choices})")
    return re.fullmatch(regex, path) is not None
