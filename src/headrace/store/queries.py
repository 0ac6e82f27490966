"""Named SQL queries loaded from `sql/<dialect>/queries.sql` (one `-- name: NAME` block each).

A `-- fragment: NAME` block is a piece of SQL written once and pasted where a query says `{{NAME}}` (a rule
several queries share, such as the event status): queries hold the expanded text, fragments are not queries.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources

_HEADER = re.compile(r"^--\s*(name|fragment):\s*([a-z_][a-z0-9_]*)\s*$", re.MULTILINE)
_USE = re.compile(r"\{\{([a-z_][a-z0-9_]*)\}\}")


def parse_queries(text: str) -> dict[str, str]:
    names = list(_HEADER.finditer(text))
    blocks: dict[str, dict[str, str]] = {"name": {}, "fragment": {}}
    for index, match in enumerate(names):
        end = names[index + 1].start() if index + 1 < len(names) else len(text)
        body = "\n".join(
            line for line in text[match.end() : end].splitlines() if not line.lstrip().startswith("--")
        ).strip()
        kind, name = match.group(1), match.group(2)
        if name in blocks["name"] or name in blocks["fragment"]:
            raise ValueError(f"query {name!r} is defined twice")
        blocks[kind][name] = body.rstrip(";")
    fragments = blocks["fragment"]
    return {name: _expand(body, fragments, ()) for name, body in blocks["name"].items()}


def _expand(body: str, fragments: dict[str, str], using: tuple[str, ...]) -> str:
    """`body` with each `{{NAME}}` replaced by its fragment (expanded too), refusing unknown and circular uses."""

    def paste(use: re.Match[str]) -> str:
        name = use.group(1)
        if name not in fragments:
            raise ValueError(f"{{{{{name}}}}} names no fragment")
        if name in using:
            raise ValueError(f"fragment {name!r} uses itself")
        return _expand(fragments[name], fragments, (*using, name))

    return _USE.sub(paste, body)


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
