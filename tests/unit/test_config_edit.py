"""config/edit.py: the connect commands' edits keep comments and other tables, write atomically, keep the mode."""

from __future__ import annotations

import os
import stat
import tomllib
from pathlib import Path

import pytest

from headrace.config import ConfigError, parse, starter
from headrace.config.edit import CONFIG_SIZE_LIMIT, NEW_FILE_MODE, ConfigFile, write_atomically

WINDMILL_FLOW = "https://windmill.example/api/w/acme/jobs/run/f/f/dodo/on_payment"


def _starter(tmp_path: Path) -> Path:
    path = tmp_path / "headrace.toml"
    path.write_text(starter.render(), encoding="utf-8")
    path.chmod(0o640)
    return path


def test_set_destination_replaces_the_table_and_keeps_comments(tmp_path: Path) -> None:
    path = _starter(tmp_path)
    config = ConfigFile.load(path)
    config.set_destination(
        "payments",
        {
            "source": "dodo",
            "events": ["payment.*"],
            "url": WINDMILL_FLOW,
            "token": "env:WINDMILL_TOKEN",
            "transform": "builtin:payment",
            "schema": "enforce",
        },
    )
    config.save()
    text = path.read_text(encoding="utf-8")
    assert "# headrace configuration. Reference: docs/configuration.md." in text
    assert "# The signing secret from Dodo's dashboard" in text
    raw = tomllib.loads(text)
    assert raw["destinations"]["payments"] == {
        "source": "dodo",
        "events": ["payment.*"],
        "url": WINDMILL_FLOW,
        "token": "env:WINDMILL_TOKEN",
        "transform": "builtin:payment",
        "schema": "enforce",
    }
    assert "retry_schedule" not in raw["destinations"]["payments"]  # keys not given are gone
    assert raw["server"]["listen"] == "127.0.0.1:8787"
    # still a valid headrace config
    settings = parse(text, environ={"WINDMILL_TOKEN": "t"})
    assert settings.destinations["payments"].url == WINDMILL_FLOW


def test_new_destination_is_added_and_another_removed(tmp_path: Path) -> None:
    path = _starter(tmp_path)
    config = ConfigFile.load(path)
    config.set_destination("refunds", {"source": "dodo", "events": ["refund.*"], "url": WINDMILL_FLOW})
    assert config.remove_destination("payments") is True
    assert config.remove_destination("payments") is False
    assert config.remove_destination("never-there") is False
    config.save()
    raw = tomllib.loads(path.read_text(encoding="utf-8"))
    assert list(raw["destinations"]) == ["refunds"]
    assert starter.EMULATOR_URL not in path.read_text(encoding="utf-8")
    assert ConfigFile.load(path).destinations() == {
        "refunds": {"source": "dodo", "events": ["refund.*"], "url": WINDMILL_FLOW}
    }


def test_source_keys_and_secrets_without_duplicates(tmp_path: Path) -> None:
    path = _starter(tmp_path)
    config = ConfigFile.load(path)
    first = config.source("dodo")
    assert first is not None
    assert config.append_source_secret("dodo", "file:dodo-webhook-secret") is True
    assert config.append_source_secret("dodo", "file:dodo-webhook-secret") is False
    config.set_source_keys("dodo", {"api_key": "env:DODO_PAYMENTS_API_KEY", "mode": "test"})
    config.save()
    again = ConfigFile.load(path)
    source = again.source("dodo")
    assert source is not None
    assert source["secrets"] == [*first["secrets"], "file:dodo-webhook-secret"]
    assert source["api_key"] == "env:DODO_PAYMENTS_API_KEY"
    assert source["tolerance"] == "5m"
    assert "# The signing secret from Dodo's dashboard" in again.text()


def test_a_new_source_gets_a_secrets_list(tmp_path: Path) -> None:
    config = ConfigFile.load(tmp_path / "headrace.toml")
    assert config.append_source_secret("other", "env:OTHER_SECRET") is True
    assert tomllib.loads(config.text()) == {"sources": {"other": {"secrets": ["env:OTHER_SECRET"]}}}


def test_the_file_keeps_its_mode_and_a_new_file_is_0600(tmp_path: Path) -> None:
    path = _starter(tmp_path)
    config = ConfigFile.load(path)
    config.set_source_keys("dodo", {"mode": "live"})
    config.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    fresh = tmp_path / "new.toml"
    created = ConfigFile.load(fresh)
    created.set_destination("payments", {"source": "dodo", "events": ["*"], "url": WINDMILL_FLOW})
    created.save()
    assert stat.S_IMODE(fresh.stat().st_mode) == NEW_FILE_MODE
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path: Path) -> None:
    path = _starter(tmp_path)
    before = path.read_text(encoding="utf-8")
    with pytest.raises(UnicodeEncodeError):
        write_atomically(path, "x = '\udcff'", 0o600)  # a lone surrogate cannot be encoded
    assert path.read_text(encoding="utf-8") == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["headrace.toml"]


def test_refusals_name_the_problem(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="not valid TOML"):
        ConfigFile.load(bad)
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (CONFIG_SIZE_LIMIT + 1))
    with pytest.raises(ConfigError, match="larger than"):
        ConfigFile.load(big)
    at_limit = tmp_path / "limit.toml"
    at_limit.write_bytes(b"#" * CONFIG_SIZE_LIMIT)
    assert ConfigFile.load(at_limit).destinations() == {}
    config = ConfigFile.load(tmp_path / "x.toml")
    with pytest.raises(ConfigError, match="names are 1-64"):
        config.set_destination("bad name", {"url": WINDMILL_FLOW})
    with pytest.raises(ConfigError, match="names are 1-64"):
        config.append_source_secret("a" * 65, "env:X")
    scalar = tmp_path / "scalar.toml"
    scalar.write_text('[sources.dodo]\nsecrets = "env:ONE"\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="expected a list"):
        ConfigFile.load(scalar).append_source_secret("dodo", "env:TWO")
    unreadable = tmp_path / "unreadable.toml"
    unreadable.write_text("", encoding="utf-8")
    unreadable.chmod(0)
    if os.geteuid() != 0:
        with pytest.raises(ConfigError, match="cannot read"):
            ConfigFile.load(unreadable)


def test_load_refuses_a_fifo_or_an_oversized_config_at_once(tmp_path: Path) -> None:
    """`headrace serve` and every reload read the config with the same bound as connect's edits: a FIFO (it would
    block the reader until a writer came) and a file over the limit are refused with the reason."""
    from headrace.config import ConfigError, load

    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="not a regular file"):
        load(fifo)
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * (CONFIG_SIZE_LIMIT + 1))
    with pytest.raises(ConfigError, match="larger than"):
        load(big)


def test_a_save_never_overwrites_a_change_made_since_the_load(tmp_path: Path) -> None:
    """Two `connect` runs at once (or an editor): each loaded the same file; the first save wins, the second is
    refused with the reason and writes nothing, so neither change is lost silently."""
    path = tmp_path / "headrace.toml"
    path.write_text("# mine\n[sources.dodo]\nsecrets = []\n")
    first, second = ConfigFile.load(path), ConfigFile.load(path)
    first.set_destination("payments", {"source": "dodo", "url": "http://127.0.0.1:1/api/w/a/jobs/run/p/f/x"})
    second.set_destination("refunds", {"source": "dodo", "url": "http://127.0.0.1:1/api/w/a/jobs/run/p/f/y"})
    first.save()
    written = path.read_bytes()
    with pytest.raises(ConfigError, match=r"changed since this command read it.*Run the command again"):
        second.save()
    assert path.read_bytes() == written and set(tomllib.loads(written.decode())["destinations"]) == {"payments"}
    again = ConfigFile.load(path)  # the second run, again: both changes now
    again.set_destination("refunds", {"source": "dodo", "url": "http://127.0.0.1:1/api/w/a/jobs/run/p/f/y"})
    again.save()
    assert set(tomllib.loads(path.read_text())["destinations"]) == {"payments", "refunds"}
    first.set_destination("payments", {"source": "dodo", "url": "http://127.0.0.1:1/api/w/a/jobs/run/p/f/z"})
    with pytest.raises(ConfigError):  # `first` saved once; the file moved on since, so its next save is refused
        first.save()


def test_a_file_created_meanwhile_is_not_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "headrace.toml"
    edit = ConfigFile.load(path)  # no file yet
    edit.set_source_keys("dodo", {"mode": "test"})
    path.write_text("# written by hand meanwhile\n")
    with pytest.raises(ConfigError, match="changed since"):
        edit.save()
    assert path.read_text() == "# written by hand meanwhile\n"


def test_saves_at_the_same_time_lose_nothing(tmp_path: Path) -> None:
    """Eight processes each add their own destination, loading again whenever a save is refused: all eight are
    in the file at the end (the compare and the write are one step under the folder's lock)."""
    import subprocess
    import sys

    path = tmp_path / "headrace.toml"
    path.write_text("[sources.dodo]\nsecrets = []\n")
    script = (
        "import sys, time\n"
        "from headrace.config import ConfigError\n"
        "from headrace.config.edit import ConfigFile\n"
        "name, path = sys.argv[1], sys.argv[2]\n"
        "for _ in range(200):\n"
        "    edit = ConfigFile.load(path)\n"
        "    edit.set_destination(name, {'source': 'dodo', 'url': 'http://127.0.0.1:1/api/w/a/jobs/run/p/f/' + name})\n"
        "    try:\n"
        "        edit.save()\n"
        "        break\n"
        "    except ConfigError:\n"
        "        time.sleep(0.01)\n"
        "else:\n"
        "    sys.exit('never saved')\n"
    )
    runs = [subprocess.Popen([sys.executable, "-c", script, f"d{i}", str(path)]) for i in range(8)]
    assert [run.wait(timeout=60) for run in runs] == [0] * 8
    assert set(tomllib.loads(path.read_text())["destinations"]) == {f"d{i}" for i in range(8)}


def test_a_config_replaced_by_a_fifo_or_a_huge_file_meanwhile_is_refused_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "headrace.toml"
    path.write_text("[sources.dodo]\nsecrets = []\n")
    edit = ConfigFile.load(path)
    edit.set_source_keys("dodo", {"mode": "test"})
    path.unlink()
    os.mkfifo(path)
    with pytest.raises(ConfigError, match="changed since"):
        edit.save()
    assert stat.S_ISFIFO(path.stat().st_mode)
    path.unlink()
    path.write_bytes(b"#" * (CONFIG_SIZE_LIMIT + 1))
    with pytest.raises(ConfigError, match="changed since"):
        edit.save()
    assert path.stat().st_size == CONFIG_SIZE_LIMIT + 1
