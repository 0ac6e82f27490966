"""The CLI's shared pieces: one error style for time options, env: resolved by headrace.config only, one
event-loop choice, and the formatter that keeps `headrace event` thin. In-process: no server needed."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from headrace.cli import main
from headrace.cli.format import event_timeline, replay_summary
from tests.helpers import SECRET, config_text

SRC = Path(__file__).resolve().parents[2] / "src" / "headrace"


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "h.toml"
    path.write_text(config_text(tmp_path / "h.db", 8787, "https://windmill.example/api/w/acme/jobs/run/p/f/x"))
    return path


@pytest.mark.parametrize(
    "argv",
    [
        ["rejections", "--since", "bogus"],
        ["replay", "--failed", "--since", "bogus"],
        ["events", "--since", "bogus"],
        ["events", "--until", "bogus"],
    ],
)
def test_a_bad_time_option_is_one_clean_line_whatever_the_command(
    argv: list[str], config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([*argv, "-c", str(config)]) == 2
    captured = capsys.readouterr()
    option = argv[-2]
    assert captured.err == (
        f"headrace: {option}: 'bogus' is not a time; write 2h (ago), 2026-11-26T10:00:00Z, 2026-11-26 or unix seconds\n"
    )
    assert captured.out == ""
    assert not (config.parent / "h.db").exists()  # refused before any store is opened


def test_send_resolves_env_references_through_config(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("HR_TEST_SEND_SECRET", raising=False)
    argv = ["send", "payment.succeeded", "--to", "ftp://127.0.0.1/x", "--secret", "env:HR_TEST_SEND_SECRET"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "--secret: environment variable HR_TEST_SEND_SECRET is not set" in err
    monkeypatch.setenv("HR_TEST_SEND_SECRET", SECRET)
    assert main(argv) == 2  # the secret now resolves and decodes; the next check is the URL's scheme
    err = capsys.readouterr().err
    assert err.startswith("headrace: --to: an http:// or https:// URL") and SECRET not in err


def test_the_cli_reads_no_environment_and_the_loop_is_chosen_once() -> None:
    # headrace.config resolves env: references; the emulator's kit runner builds a Windmill job's environment.
    readers = sorted(
        str(path.relative_to(SRC))
        for path in SRC.glob("cli/*.py")
        if re.search(r"os\.environ|os\.getenv", path.read_text("utf-8"))
    )
    assert readers == []
    choosers = sorted(str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if "import uvloop" in p.read_text("utf-8"))
    assert choosers == ["cli/shared.py"]


def test_event_timeline_lays_out_jobs_attempts_and_payload() -> None:
    data = {
        "id": 7,
        "type": "payment.failed",
        "status": "job_failed",
        "source": "dodo",
        "webhook_id": "msg_1",
        "received_at": "2026-11-27T10:00:00Z",
        "deliveries": [
            {
                "destination": "payments",
                "generation": 0,
                "status": "delivered",
                "job_id": "0b0c",
                "windmill_url": "https://wm/run/0b0c",
                "job": {"state": "failure", "duration_ms": 1500, "rerun_number": 1, "excerpt": "ValueError: x\nline"},
                "next_attempt_at": None,
                "attempt_log": [
                    {
                        "number": 1,
                        "started_at": "2026-11-27T10:00:01Z",
                        "http_status": None,
                        "duration_ms": 2000.0,
                        "outcome": "retry",
                        "detail": "timed out",
                        "notes": "",
                        "response_excerpt": "",
                    },
                    {
                        "number": 2,
                        "started_at": "2026-11-27T10:00:06Z",
                        "http_status": 201,
                        "duration_ms": 12.5,
                        "outcome": "delivered",
                        "detail": "",
                        "notes": "",
                        "response_excerpt": "0b0c",
                    },
                ],
                "payload": {"amount": "49.99"},
            }
        ],
    }
    assert event_timeline(data) == [
        "event 7  payment.failed  [job_failed]",
        "  source dodo  webhook-id msg_1  received 2026-11-27T10:00:00Z",
        "",
        "  -> payments (generation 0)  [delivered]  job_id 0b0c",
        "     Windmill: https://wm/run/0b0c",
        "     job: failure in 1.50 s (re-run #1 after a failed job)",
        "        error: ValueError: x\n        line",
        "     #1 2026-11-27T10:00:01Z  HTTP ---    2000.0 ms  retry: timed out",
        "     #2 2026-11-27T10:00:06Z  HTTP 201      12.5 ms  delivered",
        '     transformed payload: {"amount": "49.99"}',
    ]
    assert event_timeline({**data, "deliveries": []})[-1].startswith("  unrouted:")
    assert replay_summary([{"event_id": 3, "job_ids": []}]) == [
        "replayed 1 event(s) as 0 new deliveries (new job ids); a running server sends them",
        "  event 3: no enabled destination matches it now",
    ]
