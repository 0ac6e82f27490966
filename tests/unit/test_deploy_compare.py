"""windmill/deploy.py's pure pieces: what counts as unchanged, the database URL, the API root."""

from __future__ import annotations

import pytest

from headrace.windmill.deploy import Database, covers
from headrace.windmill.deploy_api import DeployError, api_base


def test_covers_ignores_keys_windmill_adds_and_nothing_else() -> None:
    wanted = {"value": {"modules": [{"id": "a", "value": {"path": "f/dodo/x"}}]}, "summary": "s"}
    stored = {
        "value": {
            "modules": [{"id": "a", "value": {"path": "f/dodo/x", "input_transforms": {}}}],
            "same_worker": False,
        },
        "summary": "s",
        "edited_by": "admin",
    }
    assert covers(stored, wanted)
    assert not covers({**stored, "summary": "t"}, wanted)
    assert not covers({"summary": "s"}, wanted)  # a key missing is a change
    assert not covers({**stored, "value": {"modules": []}}, wanted)  # a list of another length
    assert not covers({**stored, "value": {"modules": [{"id": "b"}]}}, wanted)
    assert covers({"a": None}, {"a": None}) and not covers({}, {"a": None})
    assert not covers({"port": "5432"}, {"port": 5432})


def test_database_url_parts_and_refusals() -> None:
    database = Database.from_url("postgresql://kit%40x:p%2Fw%3A@db.example:6543/shop%20db?sslmode=require")
    assert (database.user, database.password, database.host, database.port) == ("kit@x", "p/w:", "db.example", 6543)
    assert (database.dbname, database.sslmode) == ("shop db", "require")
    defaults = Database.from_url("postgres://db.example")
    assert (defaults.port, defaults.user, defaults.dbname, defaults.sslmode) == (5432, "postgres", "postgres", "prefer")
    for bad in ("mysql://db/x", "postgresql:///x", "postgresql://h:notaport/x"):
        with pytest.raises(DeployError) as caught:
            Database.from_url(bad)
        assert "postgresql://" in str(caught.value) or "port" in str(caught.value)


def test_api_base_from_what_people_paste() -> None:
    for given in ("https://app.windmill.dev", "https://app.windmill.dev/", "https://app.windmill.dev/api/"):
        assert api_base(given) == "https://app.windmill.dev/api"
    assert api_base("https://example.com/windmill") == "https://example.com/windmill/api"
