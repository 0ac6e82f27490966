"""The runbook commands on a systemd install: the secrets are in the unit's EnvironmentFile, not in an operator's
shell. Commands that only need the database (db status/migrate/prune, backup, events, event, rejections, replay)
and `check --config-only` run without them; serve, worker and `check` still need every one and say which is
missing. Real processes, a real SQLite file, an environment without the variables."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.helpers import SECRET, free_port

CONFIG = """
[server]
listen = "0.0.0.0:{port}"
database = "sqlite:///headrace.db"
admin_token = "env:HEADRACE_ADMIN_TOKEN"

[sources.dodo]
secrets = ["env:DODO_WEBHOOK_SECRET"]

[destinations.payments]
source = "dodo"
events = ["payment.*"]
url = "http://127.0.0.1:9/api/w/acme/jobs/run/p/f/dodo/on_payment"
token = "file:windmill-token"
"""
SECRETS = ("HEADRACE_ADMIN_TOKEN", "DODO_WEBHOOK_SECRET")


def headrace(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "headrace.cli", *args], capture_output=True, text=True, timeout=60, check=False, env=env
    )


def test_database_commands_run_without_the_secrets_and_serve_still_needs_them(tmp_path: Path):
    config = tmp_path / "headrace.toml"
    config.write_text(CONFIG.format(port=free_port()))  # windmill-token (a file: reference) does not exist either
    bare = {k: v for k, v in os.environ.items() if k not in SECRETS}
    c = str(config)
    for command in (
        ["db", "migrate", "-c", c],
        ["db", "status", "-c", c],
        ["events", "-c", c],
        ["rejections", "-c", c],
        ["db", "prune", "-c", c],
        ["backup", str(tmp_path / "copy.db"), "-c", c],
        ["check", "--config-only", "-c", c],
    ):
        done = headrace(*command, env=bare)
        assert done.returncode == 0, (command, done.stdout, done.stderr)
        assert "Traceback" not in done.stderr
    assert (tmp_path / "copy.db").exists()
    checked = headrace("check", "--config-only", "-c", c, env=bare)
    assert "valid (1 source(s), 1 destination(s), database sqlite)" in checked.stdout
    assert "[server] admin_token (env:HEADRACE_ADMIN_TOKEN)" in checked.stdout
    assert "[destinations.payments] token (file:windmill-token)" in checked.stdout
    broken = tmp_path / "broken.toml"
    broken.write_text(CONFIG.format(port=free_port()).replace('events = ["payment.*"]', "events = payment"))
    refused = headrace("check", "--config-only", "-c", str(broken), env=bare)
    assert refused.returncode == 2 and "not valid TOML" in refused.stderr and "Traceback" not in refused.stderr
    broken.write_text(CONFIG.format(port=free_port()) + 'transform = "./missing.js"\n')
    refused = headrace("check", "--config-only", "-c", str(broken), env=bare)
    assert refused.returncode == 2 and "missing.js" in refused.stderr, refused.stderr
    events = headrace("events", "--json", "-c", c, env=bare)
    assert json.loads(events.stdout) == []
    for command in (["serve", "-c", c], ["check", "-c", c]):
        refused = headrace(*command, env=bare)
        assert refused.returncode != 0 and "HEADRACE_ADMIN_TOKEN is not set" in refused.stderr, (command, refused)
    # A secret that is there is still checked: a malformed one is refused even where it is not needed.
    wrong = bare | {"DODO_WEBHOOK_SECRET": "not-a-whsec-secret"}
    done = headrace("db", "status", "-c", c, env=wrong)
    assert done.returncode != 0 and "whsec_" in done.stderr
    # With them all (the service's environment), everything loads.
    (tmp_path / "windmill-token").write_text("wm-token\n")
    full = bare | {"HEADRACE_ADMIN_TOKEN": "a-strong-admin-token-0123456789", "DODO_WEBHOOK_SECRET": SECRET}
    assert headrace("check", "--config-only", "-c", c, env=full).returncode == 0
