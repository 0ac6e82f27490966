"""`headrace connect windmill` against the emulator on loopback: deploys the kit once, changes nothing the second
time, never deletes, leaves what it did not create alone, stops for operators and failed locks, and writes the
config keeping its comments and holding no token value."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.cli import main
from headrace.config import load, starter
from headrace.dodo import samples
from headrace.windmill import deploy, deploy_api
from headrace.windmill.emulator import EmulatorState, EmulatorThread, running_emulator
from headrace.windmill.kit import DESTINATIONS, find_kit, kit_resources, read_kit
from tests.helpers import free_port, post, running_server, signed_headers, wait_for

TOKEN = "wm-test-token-value-1234"


@pytest.fixture
def emulator() -> Iterator[EmulatorThread]:
    with running_emulator(EmulatorState(tokens={TOKEN})) as emu:
        yield emu


@pytest.fixture
def config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("WINDMILL_TOKEN", TOKEN)
    path = tmp_path / "headrace.toml"
    path.write_text(starter.render(), encoding="utf-8")
    return path


def control(emu: EmulatorThread, **spec: Any) -> dict[str, Any]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{emu.port}/_emulator/deployment",
        data=json.dumps(spec).encode() if spec else None,
        method="POST" if spec else "GET",
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        result: dict[str, Any] = json.loads(response.read())
        return result


def user_creates(emu: EmulatorThread, kind: str, body: dict[str, Any]) -> None:
    """What a person does in Windmill by hand: create a resource or variable (`kind`) with their own token."""
    request = urllib.request.Request(
        f"http://127.0.0.1:{emu.port}/api/w/acme/{kind}/create",
        data=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()


def connect(emu: EmulatorThread, config: Path, *extra: str) -> int:
    return main(
        [
            "connect",
            "windmill",
            "--url",
            f"http://127.0.0.1:{emu.port}",
            "--workspace",
            "acme",
            "--token",
            "env:WINDMILL_TOKEN",
            "-c",
            str(config),
            *extra,
        ]
    )


def test_first_run_deploys_everything_second_run_changes_nothing(
    emulator: EmulatorThread, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    control(emulator, lock_seconds=0.3)
    kit = read_kit(find_kit())
    assert connect(emulator, config) == 0
    out = capsys.readouterr().out
    assert "waiting for the lock of script" in out and f"all {len(kit.scripts)} script locks built" in out
    state = control(emulator)
    assert len(state["script_versions"]) == len(kit.scripts)
    assert state["flows"] == sorted(flow.path for flow in kit.flows)
    assert state["schedules"] == [path for path, _ in kit.schedules]
    assert state["folders"] == ["dodo"]
    assert {"postgresql", "mysql", "smtp", "twilio", "hubspot", "segment"} <= set(state["resource_types"])
    requests_before = len(state["requests"])

    assert connect(emulator, config) == 0
    out = capsys.readouterr().out
    assert "kit: up to date" in out and "config: " in out and "up to date" in out
    again = control(emulator)
    assert again["script_versions"] == state["script_versions"]  # no new version of anything
    sent = again["requests"][requests_before:]
    assert [r for r in sent if r[0] != "GET" and "/_emulator/" not in r[1]] == []
    assert all(method != "DELETE" for method, _ in again["requests"])


def test_the_config_keeps_its_comments_and_holds_no_token_value(emulator: EmulatorThread, config: Path) -> None:
    assert connect(emulator, config) == 0
    text = config.read_text(encoding="utf-8")
    assert TOKEN not in text
    assert "# The signing secret from Dodo's dashboard" in text
    assert starter.EMULATOR_URL not in text
    settings = load(config)
    assert sorted(settings.destinations) == sorted(row.name for row in DESTINATIONS)
    for row in DESTINATIONS:
        dest = settings.destinations[row.name]
        assert dest.target.path == f"f/dodo/{row.target}" and dest.target.kind == row.kind
        assert dest.transform == f"builtin:{row.template}" and dest.schema_mode == "enforce"
        assert dest.target.base_url == f"http://127.0.0.1:{emulator.port}/api"


def test_dry_run_changes_nothing(emulator: EmulatorThread, config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = config.read_text(encoding="utf-8")
    assert connect(emulator, config, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "create  script f/dodo/record_refund" in out and "dry run" in out
    assert config.read_text(encoding="utf-8") == before
    state = control(emulator)
    assert state["script_versions"] == [] and state["folders"] == []
    assert {method for method, path in state["requests"] if "/_emulator/" not in path} == {"GET"}


def test_a_user_resource_at_the_kit_path_is_left_alone(
    emulator: EmulatorThread, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = {"path": "f/dodo/db", "value": {"host": "mine"}, "resource_type": "postgresql", "description": "ours"}
    request = urllib.request.Request(
        f"http://127.0.0.1:{emulator.port}/api/w/acme/resources/create",
        data=json.dumps(mine).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()
    url = "postgresql://kit:pw@127.0.0.1:5432/kitdb"
    assert connect(emulator, config, "--database", url, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "left alone  resource f/dodo/db" in out
    assert "create  variable f/dodo/db_password" in out
    assert "pw" not in out.replace("db_password", "")  # the password is never printed
    assert emulator.state.resources["f/dodo/db"] == {"host": "mine"}


def test_an_operator_token_stops_with_a_clear_message(
    emulator: EmulatorThread, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    control(emulator, operators=[TOKEN])
    before = config.read_text(encoding="utf-8")
    assert connect(emulator, config) == 2
    err = capsys.readouterr().err
    assert "operator" in err and "developer or an admin" in err and TOKEN not in err
    assert config.read_text(encoding="utf-8") == before
    assert control(emulator)["script_versions"] == []


def test_a_failed_lock_fails_loudly_and_writes_no_config(
    emulator: EmulatorThread, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    control(emulator, lock_errors={"f/dodo/record_refund": "ERROR: No matching distribution found for psycopg==99"})
    before = config.read_text(encoding="utf-8")
    assert connect(emulator, config) == 2
    err = capsys.readouterr().err
    assert "could not build the lock of script f/dodo/record_refund" in err and "psycopg==99" in err
    assert config.read_text(encoding="utf-8") == before
    assert control(emulator)["flows"] == []  # flows wait for the script locks


def test_a_token_given_as_a_value_is_refused(
    emulator: EmulatorThread, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["connect", "windmill", "--url", "http://127.0.0.1:1", "--workspace", "acme", "--token", TOKEN]
    assert main([*argv, "-c", str(config)]) == 2
    err = capsys.readouterr().err
    assert "env:NAME or file:PATH" in err and TOKEN not in err


@pytest.mark.postgres
def test_database_creates_the_tables_the_variable_and_the_resource(
    emulator: EmulatorThread, config: Path, capsys: pytest.CaptureFixture[str], pg_database: str
) -> None:
    url = f"postgresql://postgres:secret-pw@127.0.0.1:5432/{pg_database}?sslmode=disable"
    for _ in range(2):  # the second run finds everything in place
        assert connect(emulator, config, "--database", url) == 0
    out = capsys.readouterr().out
    assert "secret-pw" not in out
    assert emulator.state.variables["f/dodo/db_password"] == "secret-pw"
    assert emulator.state.resources["f/dodo/db"]["password"] == "$var:f/dodo/db_password"
    assert emulator.state.resources["f/dodo/db"]["dbname"] == pg_database
    import psycopg

    with psycopg.connect(url) as connection:
        tables = {row[0] for row in connection.execute("SELECT tablename FROM pg_tables WHERE tablename LIKE 'dodo_%'")}
    assert {"dodo_customers", "dodo_ledger"} <= tables
    assert sum(1 for r in control(emulator)["requests"] if r[1].endswith("/variables/create")) == 1


def test_init_connect_serve_then_a_signed_payment_becomes_a_job_of_the_kit_flow(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quickstart's second half, from an empty directory: init, connect windmill, serve, one payment."""
    monkeypatch.setenv("WINDMILL_TOKEN", TOKEN)
    path = tmp_path / "headrace.toml"
    assert main(["init", "-c", str(path)]) == 0
    assert connect(emulator, path) == 0
    path.write_text(path.read_text("utf-8").replace("127.0.0.1:8787", f"127.0.0.1:{free_port()}"), "utf-8")
    settings = load(path)
    secret = settings.sources["dodo"].secrets[0].reveal()
    body = json.dumps(samples.load("payment.succeeded")).encode()

    async def run() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            status, answer = await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, "msg_qs_1", secret))
            assert status == 202, answer

            async def delivered() -> bool:
                async with http.get(
                    f"{base}/api/v1/events/msg_qs_1",
                    headers={"Authorization": f"Bearer {settings.server.admin_token[0].reveal()}"},
                ) as response:
                    data = await response.json()
                return any(d["status"] == "delivered" for d in data["deliveries"])

            await wait_for(delivered, timeout=30, interval=0.05)

    asyncio.run(run())
    [job] = [job for job in emulator.state.jobs.values() if job.path == "f/dodo/on_payment"]
    assert job.kind == "flow" and job.workspace == "acme"
    assert job.args["webhook_id"] == "msg_qs_1" and job.args["event_type"] == "payment.succeeded"


def test_a_run_stopped_while_locks_build_is_finished_by_the_next_without_new_versions(
    emulator: EmulatorThread,
) -> None:
    control(emulator, lock_seconds=1.0)
    kit = read_kit(find_kit())
    lines: list[str] = []

    async def deploy_once(timeout: float) -> None:
        async with aiohttp.ClientSession() as http:
            api = deploy_api.Api(http, f"http://127.0.0.1:{emulator.port}", "acme", TOKEN)
            steps = await deploy.plan(api, kit, None)
            await deploy.apply(api, steps, lines.append, timeout=timeout, poll=0.05)

    with pytest.raises(deploy_api.DeployError, match="was not built within"):
        asyncio.run(deploy_once(0.0))
    first = control(emulator)["script_versions"]
    assert len(first) == len(kit.scripts) and control(emulator)["flows"] == []
    asyncio.run(deploy_once(60.0))
    after = control(emulator)
    assert after["script_versions"] == first  # waited for the same versions, sent none again
    assert after["flows"] == sorted(flow.path for flow in kit.flows)
    assert any(line.startswith("waiting for the lock of script") for line in lines)


def test_another_folder_moves_every_kit_path(emulator: EmulatorThread, config: Path) -> None:
    assert connect(emulator, config, "--folder", "billing") == 0
    state = control(emulator)
    assert state["folders"] == ["billing"]
    assert all(path.startswith("f/billing/") for _, path, _ in state["script_versions"])
    flow = emulator.state.newest("acme", "flow", "f/billing/on_payment")
    assert flow is not None
    text = json.dumps(emulator.state.versions("acme", "script", "f/billing/record_refund")[-1].schema)
    assert "$res:f/billing/db" in text and "f/dodo/" not in text
    urls = {dest.target.path for dest in load(config).destinations.values()}
    assert urls == {f"f/billing/{row.target}" for row in DESTINATIONS}


def test_a_destination_the_user_made_is_left_alone(
    emulator: EmulatorThread, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = "https://windmill.example/api/w/acme/jobs/run/p/f/mine/payments"
    config.write_text(config.read_text("utf-8").replace(starter.EMULATOR_URL, own), "utf-8")
    assert connect(emulator, config) == 0
    assert "left alone  [destinations.payments]" in capsys.readouterr().out
    settings = load(config)
    assert settings.destinations["payments"].url == own
    assert settings.destinations["refunds"].target.path == "f/dodo/record_refund"


def test_a_wrong_token_is_named_without_its_value(
    emulator: EmulatorThread, config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("WINDMILL_TOKEN", "not-the-token-xyz")
    assert connect(emulator, config) == 2
    err = capsys.readouterr().err
    assert "401" in err and "Check the token" in err and "not-the-token-xyz" not in err


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--workspace", "acme/../x", "workspace id"),
        ("--workspace", "a" * 65, "workspace id"),
        ("--folder", "do-do", "folder name"),
        ("--folder", "a" * 65, "folder name"),
        ("--url", "ftp://windmill", "Windmill's address"),
        ("--url", "https://windmill?token=x", "Windmill's address"),
    ],
)
def test_inputs_are_checked_before_anything_is_sent(
    config: Path, capsys: pytest.CaptureFixture[str], option: str, value: str, message: str
) -> None:
    argv = {"--url": "http://127.0.0.1:1", "--workspace": "acme", "--folder": "dodo", option: value}
    flat = [item for pair in argv.items() for item in pair]
    assert main(["connect", "windmill", *flat, "--token", "env:WINDMILL_TOKEN", "-c", str(config)]) == 2
    assert message in capsys.readouterr().err


def test_limits_at_the_edge_are_accepted(emulator: EmulatorThread, config: Path) -> None:
    assert connect(emulator, config, "--folder", "a" * 64, "--dry-run") == 0


def test_an_unreachable_windmill_is_named(config: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    argv = ["connect", "windmill", "--url", f"http://127.0.0.1:{port}", "--workspace", "acme"]
    assert main([*argv, "--token", "env:WINDMILL_TOKEN", "-c", str(config)]) == 2
    assert f"cannot reach Windmill at http://127.0.0.1:{port}/api" in capsys.readouterr().err


def test_a_relative_file_token_is_written_so_the_config_folder_finds_it(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    folder = tmp_path / "conf"
    folder.mkdir()
    config = folder / "headrace.toml"
    config.write_text(starter.render(), encoding="utf-8")
    (tmp_path / "wm-token").write_text(TOKEN + "\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert connect_with_token(emulator, config, "file:wm-token") == 0
    settings = load(config)
    assert settings.destinations["payments"].bearer.reveal() == TOKEN
    assert TOKEN not in config.read_text("utf-8")


def connect_with_token(emu: EmulatorThread, config: Path, token: str) -> int:
    argv = ["connect", "windmill", "--url", f"http://127.0.0.1:{emu.port}", "--workspace", "acme"]
    return main([*argv, "--token", token, "-c", str(config)])


def test_after_a_failed_lock_is_fixed_the_next_run_sends_a_new_version_and_finishes(
    emulator: EmulatorThread, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    control(emulator, lock_errors={"f/dodo/record_refund": "no matching distribution", "f/dodo/on_dispute": "bad"})
    assert connect(emulator, config) == 2
    control(emulator, lock_errors={"f/dodo/record_refund": None})
    assert connect(emulator, config) == 2  # the scripts are fine now; the flow's lock fails
    out = capsys.readouterr()
    assert "update  script f/dodo/record_refund  (its last lock failed)" in out.out
    assert "could not build the lock of flow f/dodo/on_dispute" in out.err
    control(emulator, lock_errors={"f/dodo/on_dispute": None})
    assert connect(emulator, config) == 0
    out = capsys.readouterr().out
    assert "update  flow f/dodo/on_dispute  (its last lock failed)" in out
    assert "  script f/dodo/record_refund" not in out  # built now: nothing sent for it
    assert emulator.state.runnable("acme", "script", "f/dodo/record_refund") is not None


def test_a_user_variable_at_the_password_path_leaves_both_alone(
    emulator: EmulatorThread, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    mine = {"path": "f/dodo/db_password", "value": "theirs", "is_secret": True, "description": "the team's"}
    request = urllib.request.Request(
        f"http://127.0.0.1:{emulator.port}/api/w/acme/variables/create",
        data=json.dumps(mine).encode(),
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    urllib.request.urlopen(request, timeout=10).close()
    assert connect(emulator, config, "--database", "postgresql://kit:pw@127.0.0.1:1/kitdb", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "left alone  variable f/dodo/db_password" in out
    assert "left alone  resource f/dodo/db  (its password would be the variable f/dodo/db_password" in out
    assert emulator.state.variables["f/dodo/db_password"] == "theirs"


def test_the_console_setup_page_shows_each_step_and_its_fix(
    emulator: EmulatorThread, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WINDMILL_TOKEN", TOKEN)
    path = tmp_path / "headrace.toml"
    assert main(["init", "-c", str(path)]) == 0
    path.write_text(path.read_text("utf-8").replace("127.0.0.1:8787", f"127.0.0.1:{free_port()}"), "utf-8")
    before_connect = load(path)
    assert connect(emulator, path) == 0
    settings = load(path)
    admin = {"Authorization": f"Bearer {settings.server.admin_token[0].reveal()}"}
    body = json.dumps(samples.load("payment.succeeded")).encode()
    secret = settings.sources["dodo"].secrets[0].reveal()

    async def page(http: aiohttp.ClientSession, base: str) -> str:
        async with http.get(f"{base}/console/setup", headers=admin) as response:
            assert response.status == 200
            return await response.text()

    async def run() -> tuple[str, str, str]:
        async with running_server(before_connect) as base, aiohttp.ClientSession() as http:
            starter_page = await page(http, base)
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            fresh = await page(http, base)
            await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, "msg_setup_1", secret))

            async def delivered() -> bool:
                return "#1 payment.succeeded" in (await page(http, base)).split("an event delivered")[1]

            await wait_for(delivered, timeout=30, interval=0.1)
            return starter_page, fresh, await page(http, base)

    starter_page, fresh, after = asyncio.run(run())
    assert "the starter&#39;s local emulator" in starter_page and "headrace connect windmill --url" in starter_page
    assert f"http://127.0.0.1:{emulator.port}/api, workspace acme, as" in fresh
    assert fresh.count(">done<") >= 1 + len(DESTINATIONS) + 1  # Windmill, every target, the destinations
    assert 'an event received</b></td>\n    <td><span class="badge pending">todo' in fresh
    assert "#1 payment.succeeded from dodo" in after
    for text in (starter_page, fresh, after):
        assert TOKEN not in text


def test_the_setup_page_names_an_unreachable_windmill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from headrace.check.setup import setup_steps

    monkeypatch.setenv("WINDMILL_TOKEN", TOKEN)
    path = tmp_path / "headrace.toml"
    path.write_text(starter.render(), encoding="utf-8")
    port = free_port()
    text = path.read_text("utf-8").replace(
        starter.EMULATOR_URL, f"http://127.0.0.1:{port}/api/w/acme/jobs/run/f/f/dodo/on_payment"
    )
    path.write_text(text, "utf-8")

    async def run() -> list[Any]:
        async with aiohttp.ClientSession() as http:
            return await setup_steps(load(path), http, 5.0)

    steps = asyncio.run(run())
    [windmill] = [s for s in steps if s.step.startswith("Windmill reachable")]
    assert windmill.state == "broken" and f"cannot reach Windmill at http://127.0.0.1:{port}/api" in windmill.detail
    assert "headrace connect windmill" in windmill.fix
    [kit] = [s for s in steps if s.step == "a destination for every kit automation"]
    assert kit.state == "todo" and "on_subscription" in kit.detail


def test_a_database_that_cannot_be_reached_stops_before_windmill_changes(
    emulator: EmulatorThread, config: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("psycopg")
    monkeypatch.setenv("KIT_DATABASE", f"postgresql://kit:pw-sekrit-9@127.0.0.1:{free_port()}/kitdb")
    assert connect(emulator, config, "--database", "env:KIT_DATABASE") == 2
    err = capsys.readouterr().err
    assert "creating the kit's tables failed" in err and "pw-sekrit-9" not in err
    assert control(emulator)["folders"] == [] and control(emulator)["script_versions"] == []


def test_keys_a_person_added_to_a_kit_destination_survive_a_change(
    emulator: EmulatorThread, config: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    assert connect(emulator, config) == 0
    text = config.read_text("utf-8").replace(
        "[destinations.refunds]\n", '[destinations.refunds]\n# kept: a person wrote this\ntimeout = "5s"\n'
    )
    own = "https://windmill.example/api/w/acme/jobs/run/p/f/mine/payments?token=url-token-secret"
    text = text.replace(f"http://127.0.0.1:{emulator.port}/api/w/acme/jobs/run/f/f/dodo/on_payment", own)
    config.write_text(text, "utf-8")
    (tmp_path / "token").write_text(TOKEN, "utf-8")
    monkeypatch.chdir(tmp_path)
    argv = ["connect", "windmill", "--url", f"http://127.0.0.1:{emulator.port}", "--workspace", "acme"]
    assert main([*argv, "--token", "file:token", "-c", str(config)]) == 0  # another token reference: an update
    written = config.read_text("utf-8")
    assert "# kept: a person wrote this" in written
    settings = load(config)
    assert settings.destinations["refunds"].timeout == "5s"
    assert settings.destinations["refunds"].bearer.reveal() == TOKEN
    assert settings.destinations["payments"].url == own  # left alone


def test_a_token_in_a_left_alone_url_is_not_printed(
    emulator: EmulatorThread, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    own = "https://windmill.example/api/w/acme/jobs/run/p/f/mine/payments?token=url-token-secret"
    config.write_text(config.read_text("utf-8").replace(starter.EMULATOR_URL, own), "utf-8")
    assert connect(emulator, config, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "left alone  [destinations.payments]" in out and "url-token-secret" not in out


def test_an_answer_larger_than_the_limit_is_refused_and_one_at_the_limit_read() -> None:
    from aiohttp import web

    async def run() -> None:
        sizes = {"at": deploy_api.RESPONSE_LIMIT, "past": deploy_api.RESPONSE_LIMIT + 1}

        async def whoami(request: web.Request) -> web.Response:
            size = sizes[request.match_info["workspace"]]
            body = '{"email": "a@b", "pad": "' + "x" * (size - 27) + '"}'
            assert len(body) == size
            return web.Response(text=body, content_type="application/json")

        app = web.Application()
        app.router.add_get("/api/w/{workspace}/users/whoami", whoami)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        try:
            async with aiohttp.ClientSession() as http:
                me = await deploy_api.whoami(deploy_api.Api(http, f"http://127.0.0.1:{port}", "at", TOKEN))
                assert me["email"] == "a@b"
                with pytest.raises(deploy_api.DeployError, match="larger than"):
                    await deploy_api.whoami(deploy_api.Api(http, f"http://127.0.0.1:{port}", "past", TOKEN))
        finally:
            await runner.cleanup()

    asyncio.run(run())


def test_connect_names_the_resources_the_kit_reads_and_never_creates_them(
    emulator: EmulatorThread, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    resources = kit_resources(read_kit(find_kit()))
    assert {r.path for r in resources} >= {f"f/dodo/{name}" for name in ("db", "slack", "smtp", "mysql", "twilio")}
    assert connect(emulator, config, "--dry-run") == 0
    out = capsys.readouterr().out
    assert f"resources: {len(resources)} of the {len(resources)} the kit reads are missing in workspace acme" in out
    for r in resources:
        line = next(line for line in out.splitlines() if f"resource {r.path} (type {r.resource_type})" in line)
        assert line.split()[0] == "missing" and all(name in line for name in r.destinations)
        assert f'"path": "{r.path}", "resource_type": "{r.resource_type}"' in out
    assert "Authorization: Bearer $WINDMILL_TOKEN" in out and TOKEN not in out
    assert "smtp), read by: license_keys, abandoned_checkouts, dunning" in out

    user_creates(
        emulator, "resources", {"path": "f/dodo/slack", "value": {"token": "xoxb-users-own"}, "resource_type": "slack"}
    )
    assert connect(emulator, config) == 0
    out = capsys.readouterr().out
    assert f"{len(resources) - 1} of the {len(resources)} the kit reads are missing" in out
    assert "exists  resource f/dodo/slack (type slack)" in out
    assert "missing  resource f/dodo/smtp (type smtp)" in out
    assert emulator.state.resources == {"f/dodo/slack": {"token": "xoxb-users-own"}}  # created none, changed none
    creates = [r for r in control(emulator)["requests"] if r[1].endswith("/resources/create")]
    assert len(creates) == 1  # the user's own
    assert any(r[1].endswith("/resources/exists/f/dodo/smtp") for r in control(emulator)["requests"])


def test_connect_with_database_counts_the_db_resource_as_its_own(
    emulator: EmulatorThread, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://kit:pw@127.0.0.1:5432/kitdb"
    assert connect(emulator, config, "--database", url, "--dry-run") == 0
    out = capsys.readouterr().out
    assert "created by connect  resource f/dodo/db (type postgresql)" in out
    assert "missing  resource f/dodo/db" not in out


def test_the_resources_of_another_folder_are_named_in_it(
    emulator: EmulatorThread, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert connect(emulator, config, "--folder", "billing", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "missing  resource f/billing/slack (type slack)" in out and "resource f/dodo/" not in out


def test_the_setup_page_names_each_missing_resource_until_the_user_creates_it(
    emulator: EmulatorThread, config: Path
) -> None:
    from headrace.check.setup import setup_steps

    assert connect(emulator, config) == 0

    async def steps() -> list[Any]:
        async with aiohttp.ClientSession() as http:
            return await setup_steps(load(config), http, 5.0)

    rows = {s.step: s for s in asyncio.run(steps()) if s.step.startswith("resource")}
    wired = [r for r in kit_resources(read_kit(find_kit())) if r.destinations]
    assert sorted(rows) == sorted(f"resource {r.path}" for r in wired)  # mysql: no destination reads it
    smtp = rows["resource f/dodo/smtp"]
    assert smtp.state == "todo" and "license_keys, abandoned_checkouts, dunning" in smtp.detail
    assert "Resources -> Add resource -> smtp" in smtp.fix and '"resource_type": "smtp"' in smtp.fix
    for r in wired:
        user_creates(emulator, "resources", {"path": r.path, "value": {"x": 1}, "resource_type": r.resource_type})
    rows = {s.step: s for s in asyncio.run(steps()) if s.step.startswith("resource")}
    assert [(step, row.state) for step, row in rows.items()] == [
        ("resources the kit reads exist in workspace acme", "done")
    ]


def test_connecting_dev_windmill_on_its_default_address_updates_the_starter_destination_in_place(
    tmp_path: Path,
) -> None:
    import argparse

    from headrace.cli.connect import _destinations
    from headrace.config.edit import ConfigFile

    path = tmp_path / "headrace.toml"
    path.write_text(starter.render(), encoding="utf-8")
    config = ConfigFile.load(path)
    args = argparse.Namespace(folder="dodo", workspace="demo", source="dodo", token="env:WINDMILL_TOKEN")
    lines = _destinations(args, config, "http://127.0.0.1:8000/api")
    assert not any("remove" in line for line in lines)
    assert "    update  [destinations.payments] -> flow f/dodo/on_payment" in lines
    assert sum("create  [destinations." in line for line in lines) == len(DESTINATIONS) - 1


def test_a_users_script_flow_and_schedule_at_kit_paths_are_left_alone(
    emulator: EmulatorThread, config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Someone's own script, flow and schedule at paths the kit uses (or the kit's, edited by hand in Windmill and
    paused): connect sends no new version of them and says so; everything else is deployed."""
    script = {"path": "f/dodo/record_refund", "summary": "ours", "content": "def main():\n    return 1\n"}
    user_creates(emulator, "scripts", {**script, "language": "python3", "schema": {}, "kind": "script"})
    user_creates(emulator, "flows", {"path": "f/dodo/on_dispute", "summary": "ours", "value": {"modules": []}})
    kit = read_kit(find_kit())
    schedule_path, schedule = kit.schedules[0]
    user_creates(emulator, "schedules", {"path": schedule_path, **schedule, "enabled": False})
    before = control(emulator)

    assert connect(emulator, config) == 0
    out = capsys.readouterr().out
    assert "left alone  script f/dodo/record_refund" in out
    assert "left alone  flow f/dodo/on_dispute" in out
    assert f"left alone  schedule {schedule_path}" in out
    after = control(emulator)
    sent = [r for r in after["requests"][len(before["requests"]) :] if r[0] == "POST"]
    assert not [r for r in sent if "record_refund" in r[1] or "on_dispute" in r[1] or "schedules/" in r[1]]
    assert emulator.state.newest("acme", "script", "f/dodo/record_refund").content == script["content"]
    assert len(after["script_versions"]) == len(before["script_versions"]) + len(kit.scripts) - 1


def test_two_runs_at_once_never_make_a_second_version_and_the_loser_says_to_run_again(
    emulator: EmulatorThread,
) -> None:
    """Both plan before either sends: the second create of each item is refused by Windmill (400), the run that
    loses stops saying why, and a third run finds everything deployed by headrace and up to date."""
    kit = read_kit(find_kit())

    async def both() -> list[BaseException | None]:
        async with aiohttp.ClientSession() as http:
            api = deploy_api.Api(http, f"http://127.0.0.1:{emulator.port}", "acme", TOKEN)
            plans = [await deploy.plan(api, kit, None), await deploy.plan(api, kit, None)]
            outcomes = await asyncio.gather(
                *(deploy.apply(api, steps, lambda _: None, timeout=60, poll=0.05) for steps in plans),
                return_exceptions=True,
            )
            return [o if isinstance(o, BaseException) else None for o in outcomes]

    outcomes = asyncio.run(both())
    errors = [str(o) for o in outcomes if o is not None]
    assert len(errors) == 1 and "Run connect windmill again" in errors[0], outcomes
    assert len(control(emulator)["script_versions"]) == len(kit.scripts)  # one version each, never two

    async def third() -> list[deploy.Step]:
        async with aiohttp.ClientSession() as http:
            api = deploy_api.Api(http, f"http://127.0.0.1:{emulator.port}", "acme", TOKEN)
            return await deploy.plan(api, kit, None)

    assert {step.action for step in asyncio.run(third())} <= {"unchanged"}
