"""`[server] database` and `db copy --to`: which file a sqlite: URL names, with no way to mistake one for the other.

SQLAlchemy's convention: four slashes are an absolute path, three a relative one (to the config's folder, or to
the current folder on the command line). A relative path with a folder that does not start with ./ or ../ reads
like an absolute path with a slash missing: refused, saying which file it would be and both ways to write it."""

from __future__ import annotations

from pathlib import Path

import pytest

from headrace.config import ConfigError, parse


def config(database: str) -> str:
    return f'[server]\ndatabase = "{database}"\nopen_management = true\n'


def test_four_slashes_are_absolute_and_three_relative_to_the_config_folder(tmp_path: Path):
    assert parse(config("sqlite:////var/lib/headrace/headrace.db"), base_dir=tmp_path).sqlite_path == Path(
        "/var/lib/headrace/headrace.db"
    )
    assert parse(config("sqlite:///headrace.db"), base_dir=tmp_path).sqlite_path == tmp_path / "headrace.db"
    assert parse(config("sqlite:///./data/h.db"), base_dir=tmp_path).sqlite_path == tmp_path / "data" / "h.db"
    assert parse(config("sqlite:///../h.db"), base_dir=tmp_path).sqlite_path == tmp_path / ".." / "h.db"


def test_the_old_readme_form_is_refused_naming_both_paths(tmp_path: Path):
    etc = tmp_path / "etc" / "headrace"
    with pytest.raises(ConfigError) as caught:
        parse(config("sqlite:///var/lib/headrace/headrace.db"), base_dir=etc)
    message = str(caught.value)
    assert "[server] database" in message
    assert str(etc / "var/lib/headrace/headrace.db") in message  # where it would have gone
    assert '"sqlite:////var/lib/headrace/headrace.db"' in message  # the absolute form
    assert '"sqlite:///./var/lib/headrace/headrace.db"' in message  # the relative form, made explicit


def test_the_same_rule_on_the_command_line(tmp_path: Path):
    from headrace.config.database import sqlite_file

    assert sqlite_file("sqlite:////srv/h.db", tmp_path) == Path("/srv/h.db")
    assert sqlite_file("sqlite:///h.db", tmp_path) == tmp_path / "h.db"
    for ambiguous in ("sqlite:///srv/h.db", "sqlite:///data/h.db"):
        with pytest.raises(ValueError, match="four slashes"):
            sqlite_file(ambiguous, tmp_path)
    with pytest.raises(ValueError, match="names no file"):
        sqlite_file("sqlite:///", tmp_path)


def test_db_copy_refuses_the_ambiguous_target_and_creates_nothing(tmp_path: Path, monkeypatch, capsys):
    from headrace.cli import main

    monkeypatch.chdir(tmp_path)
    cfg = tmp_path / "headrace.toml"
    cfg.write_text(config(f"sqlite:///{tmp_path / 'h.db'}"))
    assert main(["db", "migrate", "-c", str(cfg)]) == 0
    assert main(["db", "copy", "-c", str(cfg), "--to", "sqlite:///var/lib/headrace/copy.db"]) != 0
    err = capsys.readouterr().err
    assert '"sqlite:////var/lib/headrace/copy.db"' in err and str(tmp_path / "var/lib/headrace/copy.db") in err
    assert not (tmp_path / "var").exists()


def test_the_readme_production_snippet_puts_the_database_under_var_lib(tmp_path: Path):
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text("utf-8")
    snippet = readme.split("For production:")[1].split("```toml")[1].split("```")[0]
    environ = {
        "HEADRACE_ADMIN_TOKEN": "Q3v9s1nL2wKpX8e-Jd0Rm4TzYb7Uh6Ac",
        "DODO_WEBHOOK_SECRET": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        "WINDMILL_TOKEN": "wm-token",
    }
    settings = parse(snippet, environ=environ, base_dir=tmp_path / "etc" / "headrace")
    assert settings.sqlite_path == Path("/var/lib/headrace/headrace.db")
