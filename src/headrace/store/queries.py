"""Named SQL queries loaded from `sql/<dialect>/queries.sql` (one `-- name: NAME` block each)."""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^--\s*name:\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)


def parse_queries(text: str) -> dict[str, str]:
    names = list(_HEADER.finditer(text))
    queries: dict[str, str] = {}
    for index, match in enumerate(names):
        end = names[index + 1].start() if index + 1 < len(names) else len(text)
        body = "\n".join(
            line for line in text[match.end() : end].splitlines() if not line.lstrip().startswith("--")
        ).strip()
        if match.group(1) in queries:
            raise ValueError(f"query {match.group(1)!r} is defined twice")
        queries[match.group(1)] = body.rstrip(";")
    return queries


@cache
def load(dialect: str) -> dict[str, str]:
    text = resources.files("headrace.store").joinpath("sql", dialect, "queries.sql").read_text("utf-8")
    return parse_queries(text)


def migrations(dialect: str) -> list[tuple[int, str, str]]:
    """(version, file name, SQL) for each migration of a dialect, in order."""
    folder = resources.files("headrace.store").joinpath("sql", dialect, "migrations")
    found = []
    for entry in folder.iterdir():
        if entry.name.endswith(".sql"):
            found.append((int(entry.name.split("_", 1)[0]), entry.name, entry.read_text("utf-8")))
    return sorted(found)
