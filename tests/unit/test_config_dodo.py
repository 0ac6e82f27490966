"""[sources.NAME] api_key and mode: the key only ever as a reference (env:/file:), read when Dodo's API is
called, not at start-up; DODO_PAYMENTS_BASE_URL read by config/, the only reader of the environment."""

from __future__ import annotations

from pathlib import Path

import pytest

from headrace.config import ConfigError, parse
from headrace.config.sources import dodo_access

SOURCE = '[sources.dodo]\nsecrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]\n'


def test_defaults_and_references() -> None:
    source = parse(SOURCE, environ={}).sources["dodo"]
    assert source.api_key is None and source.mode == "live"
    source = parse(SOURCE + 'api_key = "env:DODO_PAYMENTS_API_KEY"\nmode = "test"\n', environ={}).sources["dodo"]
    assert source.api_key == "env:DODO_PAYMENTS_API_KEY" and source.mode == "test"


def test_an_unset_key_does_not_stop_start_up() -> None:
    """serve never calls Dodo's API: an api_key whose variable is unset is resolved only when used."""
    assert parse(SOURCE + 'api_key = "env:UNSET_HERE"\n', environ={}).sources["dodo"].api_key == "env:UNSET_HERE"


@pytest.mark.parametrize("value", ["sk_live_abcdef", "env:", "file:", "", "x" * 2000])
def test_a_key_written_in_the_config_is_refused_without_echoing_it(value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        parse(SOURCE + f'api_key = "{value}"\n', environ={})
    assert "never the key itself" in str(raised.value)
    assert "sk_live_abcdef" not in str(raised.value)


def test_mode_is_live_or_test() -> None:
    with pytest.raises(ConfigError, match="mode"):
        parse(SOURCE + 'mode = "sandbox"\n', environ={})


def test_dodo_access(tmp_path: Path) -> None:
    (tmp_path / "key").write_text("sk_from_file\n")
    access = dodo_access("file:key", "test", tmp_path, environ={"DODO_PAYMENTS_BASE_URL": "http://127.0.0.1:9"})
    assert access.api_key.reveal() == "sk_from_file" and access.mode == "test"
    assert access.base_override == "http://127.0.0.1:9" and "sk_from_file" not in repr(access)
    access = dodo_access("env:K", "live", tmp_path, environ={"K": "sk_env"})
    assert access.api_key.reveal() == "sk_env" and access.base_override is None
    with pytest.raises(ValueError, match="K is not set"):
        dodo_access("env:K", "live", tmp_path, environ={})
    with pytest.raises(ValueError, match="never the key itself"):
        dodo_access("sk_literal", "live", tmp_path, environ={})
