"""`/readyz` says why it fails (the database path, the recovery command) only to local probes and to holders of
the admin token; a client elsewhere (here: behind a trusted proxy, or any request a proxy forwarded) gets the
status alone, with the same HTTP status."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import aiohttp

from tests.helpers import config_text, free_port, running_server, settings_for

TOKEN = "readyz-admin-token-0123456789"


async def readyz(base: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as session, session.get(f"{base}/readyz", headers=headers or {}) as r:
        return r.status, await r.json()


def test_readyz_detail_only_for_local_probes_and_the_admin_token(tmp_path: Path):
    db = tmp_path / "h.db"
    extra = 'trusted_proxies = ["127.0.0.1"]'
    settings = settings_for(config_text(db, free_port(), admin_token=TOKEN, extra_server=extra), tmp_path)
    outside = {"X-Forwarded-For": "203.0.113.9"}  # what the trusted proxy says about a client on the internet

    async def main() -> None:
        async with running_server(settings) as base:
            assert await readyz(base) == (200, {"status": "ok", "detail": "ok"})
            assert (await readyz(base, outside))[1] == {"status": "ok"}
            for leftover in (db, db.with_name("h.db-wal"), db.with_name("h.db-shm")):
                leftover.unlink(missing_ok=True)
            status, local = await readyz(base)
            assert status == 503 and str(db) in local["detail"]  # the host's own probe: the whole story
            status, remote = await readyz(base, outside)
            assert (status, remote) == (503, {"status": "unavailable"})
            status, wrong = await readyz(base, outside | {"Authorization": "Bearer not-the-token-at-all"})
            assert (status, wrong) == (503, {"status": "unavailable"})
            status, owner = await readyz(base, outside | {"Authorization": f"Bearer {TOKEN}"})
            assert status == 503 and str(db) in owner["detail"]

    asyncio.run(main())


def test_readyz_through_an_untrusted_proxy_on_loopback_gives_the_status_only(tmp_path: Path):
    """A proxy on the same host that headrace was not told about still forwards X-Forwarded-For: not a local probe."""
    db = tmp_path / "h.db"
    settings = settings_for(config_text(db, free_port(), admin_token=TOKEN), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base:
            db.unlink()
            status, body = await readyz(base, {"X-Forwarded-For": "203.0.113.9"})
            assert (status, body) == (503, {"status": "unavailable"})
            status, body = await readyz(base, {"Forwarded": "for=203.0.113.9"})
            assert (status, body) == (503, {"status": "unavailable"})

    asyncio.run(main())
