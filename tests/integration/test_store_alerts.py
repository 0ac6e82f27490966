"""What Prometheus sees when the store goes away: `/metrics` still answers (so `up` stays 1), and it says so with
`headrace_ready 0` and the `store_unavailable` refusals, both of which the shipped rules alert on
(deploy/prometheus/headrace-rules.yml, promtool-tested in tests/deploy/test_prometheus.py)."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import config_text, free_port, running_server, settings_for, wait_for
from tests.integration.test_store_lifetime import fill, send, small_filesystem


async def scrape(session: aiohttp.ClientSession, base: str) -> str:
    async with session.get(f"{base}/metrics") as response:
        assert response.status == 200
        return await response.text()


def value(text: str, series: str) -> float | None:
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.M)
    return None if found is None else float(found.group(1))


REFUSED = 'headrace_events_rejected_total{source="dodo",reason="store_unavailable"}'


def test_a_deleted_database_shows_in_metrics_as_not_ready(tmp_path: Path):
    db = tmp_path / "h.db"
    settings = settings_for(config_text(db, free_port()), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as session:
            text = await scrape(session, base)
            assert value(text, "headrace_ready") == 1
            assert value(text, REFUSED) == 0  # declared at start, so increase() fires on the first refusal
            for leftover in (db, db.with_name("h.db-wal"), db.with_name("h.db-shm")):
                leftover.unlink(missing_ok=True)
            assert (await send(session, base, "msg_after"))[0] == 503

            async def not_ready() -> bool:
                return value(await scrape(session, base), "headrace_ready") == 0

            await wait_for(not_ready, timeout=10)
            assert value(await scrape(session, base), REFUSED) == 1

    asyncio.run(main())


def test_a_full_disk_shows_in_metrics_as_not_ready_and_recovers(tmp_path: Path):
    with small_filesystem(tmp_path / "fs") as fs:
        settings = settings_for(config_text(fs / "h.db", free_port()), tmp_path)

        async def main() -> None:
            async with running_server(settings) as base, aiohttp.ClientSession() as session:
                assert (await send(session, base, "msg_0"))[0] == 202
                fill(fs / "filler")
                assert (await send(session, base, "msg_full"))[0] == 503

                async def ready_is(expected: int) -> bool:
                    return value(await scrape(session, base), "headrace_ready") == expected

                await wait_for(lambda: ready_is(0), timeout=10)
                (fs / "filler").unlink()
                assert (await send(session, base, "msg_full"))[0] == 202
                await wait_for(lambda: ready_is(1), timeout=30)

        asyncio.run(main())


@pytest.mark.postgres
def test_postgresql_tables_dropped_show_in_metrics_as_not_ready(tmp_path: Path, pg_dsn: str):
    import psycopg

    text = config_text(tmp_path / "x.db", free_port()).replace(f'"sqlite:///{tmp_path / "x.db"}"', f'"{pg_dsn}"')
    settings = settings_for(text, tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as session:
            text = await scrape(session, base)
            assert value(text, "headrace_ready") == 1 and "headrace_store_wal_bytes" not in text  # SQLite only
            assert "headrace_store_write_turn_wait_seconds_total" not in text  # SQLite only
            assert "headrace_store_commits_total" not in text  # SQLite only
            with psycopg.connect(pg_dsn, autocommit=True) as conn:
                conn.execute("DROP TABLE attempts, deliveries, events CASCADE")
            assert (await send(session, base, "msg_after"))[0] == 503

            async def not_ready() -> bool:
                return value(await scrape(session, base), "headrace_ready") == 0

            await wait_for(not_ready, timeout=15)
            assert value(await scrape(session, base), REFUSED) == 1

    asyncio.run(main())
