"""Reading a small file with a bound: a config, a secret, a kit file is never allowed to be arbitrarily large,
nor to be something that blocks the reader (a FIFO waits for a writer; a device never ends)."""

from __future__ import annotations

import os
import stat
from pathlib import Path


class TooLarge(ValueError):
    """The file holds more than the limit allows."""


class NotRegular(ValueError):
    """The path is a FIFO, a device or a directory, not a plain file."""


def read_at_most(path: Path, limit: int) -> bytes:
    """The file's bytes; TooLarge past `limit`, NotRegular for anything but a plain file (OSError as raised by
    open). Opened with O_NONBLOCK, so a FIFO opens at once and is refused instead of waiting for a writer."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    with os.fdopen(fd, "rb") as handle:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise NotRegular(f"{path} is not a regular file (a FIFO, a device or a directory)")
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise TooLarge(f"{path} is larger than {limit} bytes")
    return data
