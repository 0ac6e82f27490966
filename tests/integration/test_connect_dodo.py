"""`headrace connect dodo` against the Dodo stand-in over loopback HTTP: creates one endpoint subscribed to
what the destinations route, finds it again on any page (URL case and trailing slash aside), changes only
what differs, never creates two, writes the signing secret to a 0600 file beside the config (never a
secret value into the config), and a second run sends no POST and no PATCH."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from headrace import samples
from headrace.cli import main
from headrace.config import load
from headrace.dodo.connect import MANAGED_BY, idempotency_key, normalise_url
from headrace.dodo.standin import DEFAULT_API_KEY, Fault, StandinState, StandinThread, running_standin

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
