"""What the whole suite needs from the machine. Tests that need a server or a tool skip when it is missing, so a
developer without MariaDB can still run the rest; in CI (.ci/run sets HEADRACE_REQUIRE_SERVICES=1) a missing one
stops the run before any test, so a green CI can never mean "the PostgreSQL tests were skipped"."""

from __future__ import annotations

import os
import shutil
import socket
from pathlib import Path

import pytest

# name -> how to tell it is there. Servers by a TCP connect to the port .ci/run starts them on; tools by PATH.
SERVERS = {"PostgreSQL": ("127.0.0.1", 5432), "MariaDB": ("127.0.0.1", 3306)}
TOOLS = {
    "Chromium": ("chromium", "chromium-browser"),
    "Node.js": ("node",),
    "nginx": ("nginx", "/usr/sbin/nginx"),
    "Caddy": ("caddy",),
    "promtool": ("promtool",),
    "prometheus": ("prometheus",),
    "systemd-analyze": ("systemd-analyze",),
    "openssl": ("openssl",),
    "a C compiler": ("cc", "gcc"),  # tests/slow_disk.py builds a library that makes fsync slow
}


def missing_requirements() -> list[str]:
    missing = []
    for name, address in SERVERS.items():
        try:
            socket.create_connection(address, timeout=3).close()
        except OSError as exc:
            missing.append(f"{name} on {address[0]}:{address[1]} ({exc})")
    for name, commands in TOOLS.items():
        if not any(shutil.which(c) or (Path(c).is_absolute() and Path(c).exists()) for c in commands):
            missing.append(f"{name} (none of {', '.join(commands)} found)")
    return missing


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("HEADRACE_REQUIRE_SERVICES") != "1":
        return
    missing = missing_requirements()
    if missing:
        raise pytest.UsageError(
            "HEADRACE_REQUIRE_SERVICES=1 and the tests would skip for lack of: "
            + "; ".join(missing)
            + ". Start or install them (.ci/run does) or unset the variable."
        )
