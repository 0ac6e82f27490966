"""deploy/systemd/headrace.service passes `systemd-analyze verify` without a warning, keeps its hardening
(`systemd-analyze security` exposure), reloads with SIGHUP to the main process, and gives shutdown_grace
time to run before systemd kills."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from headrace.config import ServerSettings
from headrace.durations import parse_duration

UNIT = Path(__file__).resolve().parents[2] / "deploy" / "systemd" / "headrace.service"
INSTALLED = "/opt/headrace/bin/headrace"


def analyze() -> str:
    path = shutil.which("systemd-analyze")
    if path is None:
        pytest.skip("systemd-analyze is not installed (Debian package `systemd`; .ci/run installs it)")
    return path


def test_reload_checks_the_config_before_it_signals(tmp_path: Path) -> None:
    """The unit's first ExecReload, run as written (with this checkout's headrace and a config of its own, without
    the secrets of the EnvironmentFile): 0 for a file that loads, non-zero (so no SIGHUP) for one that does not."""
    check = service()["ExecReload"][0].split()
    config = tmp_path / "headrace.toml"
    command = [str(Path(sys.executable).with_name("headrace")), *check[1:-1], str(config)]
    config.write_text(
        '[server]\nlisten = "0.0.0.0:8787"\nadmin_token = "env:HEADRACE_ADMIN_TOKEN_UNSET_HERE"\n'
        '[sources.dodo]\nsecrets = ["env:DODO_SECRET_UNSET_HERE"]\n'
    )
    assert subprocess.run(command, capture_output=True, timeout=60, check=False).returncode == 0
    config.write_text(config.read_text() + "[sources.dodo]\n")  # a table twice: not valid TOML
    refused = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert refused.returncode != 0 and "not valid TOML" in refused.stderr


def unit_here(tmp_path: Path) -> Path:
    """The unit with ExecStart pointing at this checkout's headrace (verify checks the binary exists)."""
    text = UNIT.read_text("utf-8")
    assert f"ExecStart={INSTALLED} serve -c /etc/headrace/headrace.toml" in text
    here = Path(sys.executable).with_name("headrace")
    assert here.exists(), here
    copy = tmp_path / "headrace.service"
    copy.write_text(text.replace(INSTALLED, str(here)))
    return copy


def service() -> dict[str, list[str]]:
    """The [Service] keys and their values (a key may repeat)."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text("utf-8").splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif "=" in line and not line.startswith("#") and section == "Service":
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


def test_the_unit_passes_systemd_analyze_verify_without_a_warning(tmp_path: Path) -> None:
    result = subprocess.run(
        [analyze(), "verify", str(unit_here(tmp_path))], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0 and result.stderr == "" and result.stdout == "", result.stdout + result.stderr


def test_the_unit_is_hardened(tmp_path: Path) -> None:
    result = subprocess.run(
        [analyze(), "security", "--offline=true", "--no-pager", str(unit_here(tmp_path))],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    match = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", result.stdout)
    assert match, result.stdout[-2000:] + result.stderr
    assert float(match.group(1)) <= 2.0, result.stdout  # systemd's scale: 0 (locked down) to 10 (exposed)
    values = service()
    for key, expected in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "PrivateTmp": "yes",
        "ReadWritePaths": "/var/lib/headrace",
        "ProtectHome": "yes",
        "CapabilityBoundingSet": "",
    }.items():
        assert values.get(key) == [expected], key
    assert "ProcSubset" not in values  # process_* metrics read /proc/stat


def test_reload_signals_the_main_process_and_stop_outlasts_shutdown_grace() -> None:
    values = service()
    assert values["ExecReload"] == [
        f"{INSTALLED} check --config-only -c /etc/headrace/headrace.toml",
        "/bin/kill -HUP $MAINPID",
    ]
    assert values["KillSignal"] == ["SIGTERM"]
    stop = parse_duration(values["TimeoutStopSec"][0])
    default_grace = parse_duration(ServerSettings().shutdown_grace)
    assert stop >= default_grace + 30, "TimeoutStopSec must leave shutdown_grace room to finish"
