"""The store's self-checks: a real write commits (health), and the open database has this binary's schema version
and every column it uses."""

from __future__ import annotations

from headrace.store import schema
from headrace.store.programs.steps import Program, all_rows, one, run


def check_writable() -> Program[None]:
    yield run("health_write")


def check_schema(where: str, known: int) -> Program[None]:
    row = yield one("schema_version")
    schema.check_live(where, 0 if row is None else int(row["version"]), known)
    yield all_rows("schema_probe")
