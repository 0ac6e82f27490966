"""Reading a small file with a bound: a config, a secret, a kit file is never allowed to be arbitrarily large."""

from __future__ import annotations

from pathlib import Path


class TooLarge(ValueError):
    """The file holds more than the limit allows."""


def read_at_most(path: Path, limit: int) -> bytes:
    """The file's bytes; TooLarge past `limit` (OSError as raised by open)."""
    with path.open("rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"{path} is larger than {limit} bytes")
    return data
