"""What a reload may change (ops/reload.py): restart-only keys keep their running value, the rest applies."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from headrace.config import ConfigError, parse
from headrace.ops.reload import RELOADABLE, RESTART_ONLY, merge

TOKEN = "merge-admin-token-1234"
BASE = f"""
[server]
listen = "0.0.0.0:8787"
admin_token = "{TOKEN}"

[sources.dodo]
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
"""


def test_restart_only_keys_keep_the_running_value_and_are_named():
    current = parse(BASE, environ={})
    new = parse(
        BASE.replace("0.0.0.0:8787", "0.0.0.0:9999").replace("[server]\n", '[server]\nbody_timeout = "5s"\n'),
        environ={},
    )
    change = merge(current, new)
    assert change.needs_restart == ("listen",)
    assert change.settings.server.listen == "0.0.0.0:8787" and change.settings.server.body_timeout == "5s"
    assert "[server] changed: body_timeout" in change.summary and "9999" not in change.summary


def test_a_file_valid_only_with_a_restart_only_change_is_refused():
    """open_management needs a loopback listen: with the running (public) listen kept, it does not fit."""
    current = parse(BASE, environ={})
    new = parse(
        BASE.replace("0.0.0.0:8787", "127.0.0.1:8787").replace(f'admin_token = "{TOKEN}"', "open_management = true"),
        environ={},
    )
    with pytest.raises(ConfigError, match="listen as changed, which needs a restart"):
        merge(current, new)


def test_the_operations_guide_names_every_restart_only_key():
    text = (Path(__file__).resolve().parents[2] / "docs" / "operations.md").read_text()
    paragraph = text[text.index("**Needs a restart.**") :].split("\n\n")[0]
    restart, _, reloadable = paragraph.partition("The other `[server]` keys")
    assert set(re.findall(r"`([a-z_]+)`", restart)) == set(RESTART_ONLY)
    assert set(re.findall(r"`([a-z_]+)`", reloadable)) == set(RELOADABLE)


def test_a_reload_that_changes_nothing_says_so_and_why_that_may_be():
    from headrace.ops.reload import summarize

    settings = parse(BASE, environ={})
    summary = summarize(settings, parse(BASE, environ={}))
    assert summary.startswith("no change") and "mount the config's folder" in summary
    changed = parse(BASE + 'tolerance = "10m"\n', environ={})
    assert summarize(settings, changed).startswith("sources changed: dodo")
