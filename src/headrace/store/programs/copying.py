"""Copying a whole database (`headrace db copy`): the tables in foreign-key order, rows out and in by id, and
taking over the source's deployment id and id sequences at the end."""

from __future__ import annotations

from typing import Any

from headrace.store.programs.steps import Program, all_rows, many, one, run

COPIED_TABLES = ("events", "deliveries", "attempts", "rejections", "test_deliveries")  # in foreign-key order


def export_rows(table: str, after_id: int, limit: int) -> Program[list[dict[str, Any]]]:
    found = yield all_rows(f"export_{table}", {"after_id": after_id, "limit": limit})
    return [{key: _plain(value) for key, value in dict(row).items()} for row in found]


# Columns a row may lack (added by a later migration than the code that wrote it): their defaults.
_DEFAULTS: dict[str, dict[str, Any]] = {
    "events": {"event_key": None, "origin": "dodo", "duplicate_of": None, "note": "", "unrouted": None}
}


def import_rows(table: str, batch: list[dict[str, Any]]) -> Program[None]:
    if batch:
        defaults = _DEFAULTS.get(table, {})
        yield many(f"import_{table}", [{**defaults, **row} for row in batch])


def finish_import(deployment_id: str) -> Program[dict[str, int]]:
    """After the rows: take over the source's deployment id, move id sequences past the copied ids."""
    yield run("set_deployment_id", {"deployment_id": deployment_id})
    yield one("reset_ids")
    return (yield from table_counts())


def table_counts() -> Program[dict[str, int]]:
    row = yield one("table_counts")
    return {key: int(value) for key, value in dict(row).items()}


def _plain(value: Any) -> Any:
    return bytes(value) if isinstance(value, memoryview) else value
