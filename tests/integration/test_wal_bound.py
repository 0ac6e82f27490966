"""The SQLite WAL under a reader that stays: another process's open read transaction (an interactive sqlite3,
the documented `.backup` fallback) pins the WAL, and every write grows it. Here a real sqlite3 connection holds a
read transaction while webhooks keep coming: the WAL stops near [server] wal_limit (new webhooks get 503 +
Retry-After, nothing of them stored), every accepted event is kept, and once the reader goes the WAL file is
cut back to nothing without any further traffic."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from pathlib import Path

import aiohttp

from headrace.store.sqlite_io import JOURNAL_SIZE_LIMIT, wal_bytes
from tests.helpers import config_text, dodo_body, free_port, running_server, settings_for, signed_headers, wait_for

LIMIT = 64 * 1024 * 1024
PADDING = "x" * 200_000  # ~200 KB a webhook, so the limit is reached in a few hundred requests
MAX_REQUESTS = 2000  # a bound on the test itself: the WAL must stop well before


def test_an_open_reader_cannot_grow_the_wal_past_the_limit_and_it_shrinks_after(tmp_path: Path):
    db = tmp_path / "h.db"
    settings = settings_for(config_text(db, free_port(), extra_server=f"wal_limit = {LIMIT}"), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as session:

            async def send(webhook_id: str) -> tuple[int, dict[str, str], dict[str, str]]:
                body = dodo_body(note=PADDING)
                async with session.post(
                    f"{base}/webhooks/dodo", data=body, headers=signed_headers(body, webhook_id)
                ) as response:
                    return response.status, await response.json(), dict(response.headers)

            assert (await send("msg_before"))[0] == 202
            reader = sqlite3.connect(db, isolation_level=None)
            reader.execute("BEGIN")
            held = reader.execute("SELECT COUNT(*) FROM events").fetchone()[0]  # the read transaction is open
            accepted, refused = ["msg_before"], None
            for n in range(MAX_REQUESTS):
                status, body, headers = await send(f"msg_{n}")
                if status == 202:
                    accepted.append(f"msg_{n}")
                    continue
                assert (status, body["error"], headers["Retry-After"]) == (503, "store_unavailable", "30")
                refused = f"msg_{n}"
                break
            assert refused is not None, f"the WAL grew to {wal_bytes(db)} bytes and nothing was refused"
            grown = wal_bytes(db)
            assert LIMIT < grown < LIMIT + 8 * 1024 * 1024  # one webhook's commit past the limit at most
            async with session.get(f"{base}/metrics") as response:
                metrics = await response.text()
            assert int(re.search(r"^headrace_store_wal_bytes (\d+)$", metrics, re.M).group(1)) > LIMIT  # type: ignore[union-attr]
            assert (await send(refused))[0] == 503  # still refused while the reader stays
            assert reader.execute("SELECT COUNT(*) FROM events").fetchone()[0] == held  # its snapshot, untouched
            reader.execute("COMMIT")
            reader.close()

            async def shrunk() -> bool:  # no request meanwhile: the keeper does it alone
                return wal_bytes(db) <= JOURNAL_SIZE_LIMIT

            await wait_for(shrunk, timeout=15)
            assert wal_bytes(db) == 0  # truncated, not just started over
            assert (await send(refused))[0] == 202  # Dodo's retry of the refused webhook is accepted
            accepted.append(refused)
            for n in range(20):  # traffic again, without a reader: the WAL stays small
                assert (await send(f"msg_after_{n}"))[0] == 202
                accepted.append(f"msg_after_{n}")
            assert wal_bytes(db) <= JOURNAL_SIZE_LIMIT

        conn = sqlite3.connect(db)
        try:
            stored = {row[0] for row in conn.execute("SELECT webhook_id FROM events")}
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        finally:
            conn.close()
        assert stored == set(accepted)  # every accepted event kept, nothing of a refused one

    asyncio.run(main())
