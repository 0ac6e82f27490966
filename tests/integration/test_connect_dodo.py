"""`headrace connect dodo` against the Dodo stand-in over loopback HTTP: creates one endpoint subscribed to
what the destinations route, finds it again on any page (URL case and trailing slash aside), changes only
what differs, never creates two, writes the signing secret to a 0600 file beside the config (never a
secret value into the config), and a second run sends no POST and no PATCH. The console's Setup page asks the
stand-in the same with the source's api_key: there, enabled, subscribed; `unknown` when it does not answer."""

from __future__ import annotations

import asyncio
import socket
import stat
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.check.setup import setup_steps
from headrace.cli import main
from headrace.config import load
from headrace.dodo import samples
from headrace.dodo.api import WebhookEndpoint
from headrace.dodo.connect import MANAGED_BY, SOURCE_KEY, idempotency_key, normalise_url
from headrace.dodo.endpoint_state import endpoint_state, routed_types
from headrace.dodo.standin import DEFAULT_API_KEY, Fault, StandinState, StandinThread, running_standin
from tests.helpers import free_port, running_server

PUBLIC_URL = "https://hooks.example.com/webhooks/dodo"
STARTER_TYPES = [*sorted(t for t in samples.EVENT_TYPES if t.startswith("payment.")), "refund.succeeded"]


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
    return path


def connect(config: Path, *extra: str, url: str = PUBLIC_URL) -> int:
    return main(
        ["connect", "dodo", "-c", str(config), "--public-url", url, "--api-key", "env:DODO_PAYMENTS_API_KEY",
         "--mode", "test", *extra]
    )  # fmt: skip


def writes(state: StandinState) -> tuple[int, int]:
    return state.count("POST"), state.count("PATCH")


def test_first_run_creates_the_endpoint_and_writes_the_secret_beside_the_config(
    config: Path, standin: StandinThread, capsys: pytest.CaptureFixture[str]
) -> None:
    before = config.read_text()
    assert connect(config) == 0
    (endpoint,) = standin.state.endpoints.values()
    assert endpoint.url == PUBLIC_URL and not endpoint.disabled
    assert sorted(endpoint.filter_types) == STARTER_TYPES  # payment.* and refund.succeeded, expanded
    assert endpoint.metadata == {**MANAGED_BY, "headrace_source": "dodo"}
    assert standin.state.idempotency == {idempotency_key("test", PUBLIC_URL, "dodo"): endpoint.id}

    secret_file = config.parent / "dodo-webhook-secret"
    assert secret_file.read_text().strip() == endpoint.secret
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    text = config.read_text()
    assert endpoint.secret not in text and DEFAULT_API_KEY not in text
    assert 'api_key = "env:DODO_PAYMENTS_API_KEY"' in text and 'mode = "test"' in text
    assert '"file:dodo-webhook-secret"' in text
    kept = [line for line in before.splitlines() if line.startswith("#")]
    assert all(line in text for line in kept), "the config's comments stay"
    settings = load(config)
    source = settings.sources["dodo"]
    assert len(source.secrets) == 2, "the starter's secret stays beside Dodo's"
    assert source.secrets[-1].reveal() == endpoint.secret and source.mode == "test"
    out = capsys.readouterr().out
    assert endpoint.secret not in out and DEFAULT_API_KEY not in out


def test_second_run_makes_no_post_and_no_patch(
    config: Path, standin: StandinThread, capsys: pytest.CaptureFixture[str]
) -> None:
    assert connect(config) == 0
    text, counts = config.read_text(), writes(standin.state)
    assert connect(config) == 0
    assert writes(standin.state) == counts == (1, 0)
    assert config.read_text() == text
    assert "up to date" in capsys.readouterr().out
    assert not (config.parent / "dodo-webhook-secret-2").exists()


def test_a_disabled_endpoint_with_another_spelling_of_the_url_is_re_enabled_not_duplicated(
    config: Path, standin: StandinThread
) -> None:
    endpoint, _ = standin.state.add_endpoint(
        "HTTPS://Hooks.Example.COM:443/webhooks/dodo/", filter_types=STARTER_TYPES, disabled=True,
        metadata={**MANAGED_BY, "headrace_source": "dodo"}, description="mine",
    )  # fmt: skip
    assert connect(config) == 0
    assert writes(standin.state) == (0, 1) and list(standin.state.endpoints) == [endpoint.id]
    assert endpoint.disabled is False and endpoint.description == "mine"
    assert endpoint.url == "HTTPS://Hooks.Example.COM:443/webhooks/dodo/", "the URL as it was: not changed"


def test_missing_event_types_are_added_and_the_users_own_kept(config: Path, standin: StandinThread) -> None:
    endpoint, _ = standin.state.add_endpoint(PUBLIC_URL, filter_types=["payment.succeeded", "dunning.started"])
    assert connect(config) == 0
    assert writes(standin.state) == (0, 1)
    assert sorted(endpoint.filter_types) == sorted({*STARTER_TYPES, "dunning.started"})
    assert endpoint.metadata == {**MANAGED_BY, "headrace_source": "dodo"}


def test_an_endpoint_on_a_later_page_is_found(config: Path, standin: StandinThread) -> None:
    for n in range(130):  # more than one page of 100
        standin.state.add_endpoint(f"https://elsewhere.example/{n}")
    ours, _ = standin.state.add_endpoint(PUBLIC_URL, filter_types=STARTER_TYPES)
    assert connect(config) == 0
    assert writes(standin.state) == (0, 1)  # only the metadata marking it as headrace's
    assert ours.metadata["managed_by"] == "headrace" and len(standin.state.endpoints) == 131
    assert standin.state.count("GET", "/webhooks") >= 2


def test_dry_run_changes_nothing(config: Path, standin: StandinThread, capsys: pytest.CaptureFixture[str]) -> None:
    text = config.read_text()
    assert connect(config, "--dry-run") == 0
    assert writes(standin.state) == (0, 0) and not standin.state.endpoints
    assert config.read_text() == text and not (config.parent / "dodo-webhook-secret").exists()
    out = capsys.readouterr().out
    assert "would create" in out and "would set" in out
    standin.state.add_endpoint(PUBLIC_URL, filter_types=["payment.succeeded"], disabled=True)
    assert connect(config, "--dry-run") == 0
    assert writes(standin.state) == (0, 0) and config.read_text() == text
    assert "would change" in capsys.readouterr().out


def test_a_rotated_secret_needs_refresh_secret_and_the_old_one_stays(
    config: Path, standin: StandinThread, capsys: pytest.CaptureFixture[str]
) -> None:
    assert connect(config) == 0
    (endpoint,) = standin.state.endpoints.values()
    old = endpoint.secret
    standin.state.rotate_secret(endpoint.id)
    text = config.read_text()
    assert connect(config) == 1
    assert "--refresh-secret" in capsys.readouterr().out and config.read_text() == text
    assert connect(config, "--refresh-secret") == 0
    assert (config.parent / "dodo-webhook-secret-2").read_text().strip() == endpoint.secret
    secrets = [s.reveal() for s in load(config).sources["dodo"].secrets]
    assert secrets[-2:] == [old, endpoint.secret]
    assert writes(standin.state) == (1, 0)


def test_a_lost_answer_to_the_post_is_listed_again_not_posted_twice(config: Path, standin: StandinThread) -> None:
    standin.state.faults.append(Fault(502, method="POST", path_prefix="/webhooks", after=True))
    assert connect(config) == 0
    assert len(standin.state.endpoints) == 1 and standin.state.count("POST") == 1
    assert load(config).sources["dodo"].secrets[-1].reveal() == next(iter(standin.state.endpoints.values())).secret


def test_a_post_that_failed_before_creating_is_sent_again_once(config: Path, standin: StandinThread) -> None:
    standin.state.faults.append(Fault(503, method="POST", path_prefix="/webhooks"))
    assert connect(config) == 0
    assert len(standin.state.endpoints) == 1
    standin.state.faults.append(Fault(503, count=2, method="POST", path_prefix="/webhooks"))
    other = config.parent / "other.toml"
    other.write_text(config.read_text())
    assert connect(other, url="https://hooks.example.com/other/webhooks/dodo") == 2
    assert len(standin.state.endpoints) == 1, "two failures: it stops, it does not POST a third time"


def test_a_422_is_not_retried(config: Path, standin: StandinThread, capsys: pytest.CaptureFixture[str]) -> None:
    standin.state.faults.append(Fault(422, method="POST", path_prefix="/webhooks"))
    assert connect(config) == 2
    assert "HTTP 422" in capsys.readouterr().err and not standin.state.endpoints


def test_rate_limit_is_waited_out(config: Path, standin: StandinThread, capsys: pytest.CaptureFixture[str]) -> None:
    standin.state.faults.append(Fault(429, retry_after="0", method="GET", path_prefix="/webhooks"))
    assert connect(config) == 0
    assert "rate limit" in capsys.readouterr().out and len(standin.state.endpoints) == 1


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--api-key", "sk_live_LITERALKEY"], "never the key itself"),
        (["--api-key", "env:NOT_SET_ANYWHERE"], "NOT_SET_ANYWHERE is not set"),
        (["--public-url", "ftp://hooks.example.com/x"], "https://"),
        (["--public-url", "https://user:pw@hooks.example.com/x"], "user name or password"),
        (["--source", "nosuch"], "no enabled destination takes events from source 'nosuch'"),
    ],
)
def test_refusals(
    config: Path, standin: StandinThread, capsys: pytest.CaptureFixture[str], extra: list[str], words: str
) -> None:
    args = ["connect", "dodo", "-c", str(config), "--public-url", PUBLIC_URL, "--api-key", "env:DODO_PAYMENTS_API_KEY"]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err
    assert words in err and "LITERALKEY" not in err
    assert writes(standin.state) == (0, 0)


def test_a_wrong_key_says_so_without_printing_it(
    config: Path, standin: StandinThread, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DODO_PAYMENTS_API_KEY", "sk_test_WRONGVALUE")
    assert connect(config) == 2
    err = capsys.readouterr().err
    assert "HTTP 401" in err and "--mode test" in err and "WRONGVALUE" not in err


def test_url_normalisation() -> None:
    same = ["https://hooks.example.com/webhooks/dodo", "HTTPS://HOOKS.example.com/webhooks/dodo/",
            "https://hooks.example.com:443/webhooks/dodo"]  # fmt: skip
    assert {normalise_url(u) for u in same} == {PUBLIC_URL}
    assert normalise_url("https://hooks.example.com/Webhooks/dodo") != PUBLIC_URL, "paths are case-sensitive"
    assert normalise_url("http://hooks.example.com/webhooks/dodo") != PUBLIC_URL
    assert normalise_url("https://hooks.example.com:8443/webhooks/dodo").endswith(":8443/webhooks/dodo")


def test_public_url_length_at_and_past_the_limit(config: Path, standin: StandinThread) -> None:
    base = "https://hooks.example.com/"
    at_limit = base + "a" * (2048 - len(base) - len("/webhooks/dodo")) + "/webhooks/dodo"
    assert len(at_limit) == 2048
    assert connect(config, "--dry-run", url=at_limit) == 0
    assert connect(config, "--dry-run", url=at_limit.replace("hooks.", "hooks.x")) == 2


def test_a_plain_http_url_off_this_machine_gets_a_note(
    config: Path, standin: StandinThread, capsys: pytest.CaptureFixture[str]
) -> None:
    assert connect(config, "--dry-run", url="http://hooks.example.com/webhooks/dodo") == 0
    assert "plain http://" in capsys.readouterr().out
    assert connect(config, "--dry-run", url="http://127.0.0.1:8787/webhooks/dodo") == 0
    assert "plain http://" not in capsys.readouterr().out


# ---- the console's Setup page asks Dodo the same (check/setup.py, dodo/endpoint_state.py) ----------------------

STEP = "Dodo endpoint for source dodo"


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
    assert connect(config) == 0
    (endpoint,) = standin.state.endpoints.values()
    step = dodo_step(config)
    assert step.state == "done" and endpoint.id in step.detail and step.fix == ""

    endpoint.disabled = True  # what Svix does to an endpoint that failed for days
    step = dodo_step(config)
    assert step.state == "broken" and "DISABLED" in step.detail
    assert f"--public-url {PUBLIC_URL} --api-key env:DODO_PAYMENTS_API_KEY --mode test" in step.fix
    assert connect(config) == 0
    assert not endpoint.disabled and dodo_step(config).state == "done"


def test_an_endpoint_missing_a_routed_event_type_is_todo(config: Path, standin: StandinThread) -> None:
    assert connect(config) == 0
    (endpoint,) = standin.state.endpoints.values()
    endpoint.filter_types = ["payment.succeeded"]
    step = dodo_step(config)
    wanted = routed_types(load(config), "dodo")
    assert step.state == "todo" and f"not subscribed to {len(wanted) - 1} event type(s)" in step.detail
    assert "payment.failed" in step.detail and PUBLIC_URL in step.fix


def test_an_endpoint_nobody_marked_is_not_taken_for_headraces(config: Path, standin: StandinThread) -> None:
    assert connect(config) == 0
    (endpoint,) = standin.state.endpoints.values()
    endpoint.metadata = {}
    step = dodo_step(config)
    assert step.state == "todo" and "no webhook endpoint in Dodo is marked as headrace's" in step.detail


def test_a_dodo_that_is_down_or_silent_is_unknown_within_the_timeout(
    config: Path, standin: StandinThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert connect(config) == 0
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
    assert connect(config) == 0
    config.write_text(config.read_text("utf-8").replace("127.0.0.1:8787", f"127.0.0.1:{free_port()}"), "utf-8")
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


def test_an_endpoint_deleted_in_dodo_is_created_again_with_a_key_of_its_own(
    config: Path, standin: StandinThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """Deleted in Dodo's dashboard, then connect again: the first key answers with the deleted endpoint (a stored
    idempotent answer), so connect makes a new one under a key derived from the deleted id."""
    assert connect(config) == 0
    (first,) = standin.state.endpoints.values()
    request = urllib.request.Request(
        f"{standin.url}/webhooks/{first.id}",
        method="DELETE",
        headers={"Authorization": f"Bearer {DEFAULT_API_KEY}"},
    )
    urllib.request.urlopen(request, timeout=10).close()
    assert connect(config, "--refresh-secret") == 0
    (second,) = standin.state.endpoints.values()
    assert second.id != first.id and not second.disabled
    assert "which was deleted since" in capsys.readouterr().out
    assert standin.state.idempotency[idempotency_key("test", PUBLIC_URL, "dodo", first.id)] == second.id


def test_an_endpoint_marked_for_another_source_is_not_taken_over(
    config: Path, standin: StandinThread, capsys: pytest.CaptureFixture[str]
) -> None:
    """An endpoint at this URL that a connect for another source marked stays that source's: no PATCH, no second
    endpoint, and the reason names both sources."""
    theirs, _ = standin.state.add_endpoint(
        PUBLIC_URL, filter_types=["dispute.opened"], metadata={**MANAGED_BY, SOURCE_KEY: "shop2"}
    )
    before = config.read_text()
    assert connect(config) != 0
    assert writes(standin.state) == (0, 0) and list(standin.state.endpoints) == [theirs.id]
    assert theirs.metadata[SOURCE_KEY] == "shop2" and theirs.filter_types == ["dispute.opened"]
    assert config.read_text() == before
    err = capsys.readouterr().err
    assert "'shop2'" in err and "'dodo'" in err and "left as it is" in err
