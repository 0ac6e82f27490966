"""The PID file `headrace serve` writes so `kill -HUP $(cat FILE)` reaches it (`pidof headrace` does not: the
process is python). Written atomically (a temporary file in the same folder, then rename) once the port is
bound, so a reader never sees a half-written number; removed at exit only while it still names this process,
so a second instance that took the file over keeps it."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from headrace.config import ConfigError


def write(path: Path) -> None:
    """Write this process's id to `path` (replacing a stale file); ConfigError naming the path on failure."""
    try:
        fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    except OSError as exc:
        raise ConfigError(
            f"cannot write the PID file {path} ({exc.strerror}): create {path.parent} writable by this user "
            "(systemd: RuntimeDirectory=headrace gives /run/headrace), or change [server] pid_file / --pid-file"
        ) from None
    try:
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(f"{os.getpid()}\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def remove(path: Path) -> None:
    """Remove `path` if it still names this process."""
    with contextlib.suppress(OSError, ValueError):
        if int(path.read_text(encoding="ascii").strip()) == os.getpid():
            path.unlink()
