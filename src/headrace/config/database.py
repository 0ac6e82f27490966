"""Which file a `sqlite:` database URL names: one rule for `[server] database` and `db copy --to`.

SQLAlchemy's convention: `sqlite:////var/lib/headrace/headrace.db` (four slashes) is the absolute path
/var/lib/headrace/headrace.db; `sqlite:///headrace.db` (three) is relative, to the config file's folder (or,
on the command line, the current folder). `sqlite:///var/lib/headrace/headrace.db` is where that goes wrong: it
reads like an absolute path but is var/lib/... under the config's folder. A relative path with a folder in it must
therefore say so with ./ or ../; otherwise it is refused, naming the file it would have been and both spellings.
"""

from __future__ import annotations

from pathlib import Path

SQLITE_PREFIX = "sqlite:///"


def sqlite_file(url: str, base: Path) -> Path:
    """The database file `url` (which starts with sqlite:///) names; relative paths are under `base`.
    ValueError, with both spellings, for a relative path with a folder that does not start with ./ or ../."""
    rest = url.removeprefix(SQLITE_PREFIX)
    if not rest:
        raise ValueError(f"{url!r} names no file: write sqlite:////ABSOLUTE/PATH or sqlite:///NAME.db")
    path = Path(rest)
    if path.is_absolute():
        return path
    if len(path.parts) > 1 and not rest.startswith(("./", "../")):
        raise ValueError(
            f"{url!r} is a relative path (three slashes): it would be {base / path}. For /{rest} write "
            f'"sqlite:////{rest}" (four slashes); for the file under {base}, "sqlite:///./{rest}"'
        )
    return base / path
