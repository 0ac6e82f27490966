"""A bulk replay confirmation is single-use: concurrent POSTs of one token (a double-click, a retried request, two
admins, two instances on one PostgreSQL) write exactly one replay's deliveries, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.store.sqlite import SQLiteStore
from tests.helpers import config_text, free_port, running_server, settings_for

TOKEN = "bulk-once-admin-token-123"
EVENTS = 1_200  # more than two write chunks, so racing replays interleave between transactions
RACERS = 6


def _rows(count: int, now: float) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "source": "dodo",
            "webhook_id": f"msg_once_{i}",
            "event_type": "payment.succeeded",
            "webhook_timestamp": int(now),
            "received_at": now,
            "body": b"{}",
            "headers": "{}",
        }
        for i in range(1, count + 1)
    ]


def _config(tmp_path: Path, database: str | None) -> str:
    # A destination nobody listens on: deliveries stay pending (retried later), which is all this test counts.
    text = config_text(
        tmp_path / "h.db",
        free_port(),
        "http://127.0.0.1:9/api/w/ws/jobs/run/p/f/dodo/on_event",
        admin_token=TOKEN,
        schedule='["1h"]',
    )
    if database is not None:
        text = re.sub(r'database = "[^"]*"', f'database = "{database}"', text)
    return text


async def _import(database: str | None, tmp_path: Path) -> None:
    if database is None:
        store: Any = SQLiteStore(tmp_path / "h.db")
    else:
        from headrace.store.postgres import PostgresStore

        store = PostgresStore(database)
    await store.open()
    try:
        await store.import_rows("events", _rows(EVENTS, time.time()))
    finally:
        await store.close()


def _deliveries(database: str | None, tmp_path: Path) -> int:
    if database is None:
        import sqlite3

        conn = sqlite3.connect(tmp_path / "h.db")
        try:
            return int(conn.execute("SELECT count(*) FROM deliveries").fetchone()[0])
        finally:
            conn.close()
    import psycopg

    with psycopg.connect(database) as pg:
        row = pg.execute("SELECT count(*) FROM deliveries").fetchone()
        assert row is not None
        return int(row[0])


def _database(request: pytest.FixtureRequest, backend: str) -> str | None:
    return request.getfixturevalue("pg_dsn") if backend == "postgres" else None


BACKENDS = [pytest.param("sqlite"), pytest.param("postgres", marks=pytest.mark.postgres)]


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_api_posts_of_one_token_replay_once(tmp_path: Path, request: pytest.FixtureRequest, backend: str):
    database = _database(request, backend)
    settings = settings_for(_config(tmp_path, database), tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession(headers=auth) as http:
            await _import(database, tmp_path)
            async with http.get(f"{base}/api/v1/replay/bulk") as response:
                plan = await response.json()
            assert plan["deliveries"] == EVENTS

            async def once() -> int:
                async with http.post(f"{base}/api/v1/replay/bulk", json={"token": plan["token"]}) as response:
                    await response.read()
                    return response.status

            statuses = await asyncio.gather(*(once() for _ in range(RACERS)))
            assert sorted(statuses) == [200] + [409] * (RACERS - 1), statuses
        assert _deliveries(database, tmp_path) == EVENTS

    asyncio.run(main())


@pytest.mark.postgres
def test_two_instances_on_one_postgresql_replay_a_token_once(tmp_path: Path, pg_dsn: str):
    first = settings_for(_config(tmp_path, pg_dsn), tmp_path)
    second = settings_for(_config(tmp_path, pg_dsn), tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def main() -> None:
        async with (
            running_server(first) as one,
            running_server(second) as two,
            aiohttp.ClientSession(headers=auth) as http,
        ):
            await _import(pg_dsn, tmp_path)
            async with http.get(f"{one}/api/v1/replay/bulk") as response:
                plan = await response.json()

            async def once(base: str) -> int:
                async with http.post(f"{base}/api/v1/replay/bulk", json={"token": plan["token"]}) as response:
                    await response.read()
                    return response.status

            statuses = await asyncio.gather(*(once(b) for b in [one, two] * (RACERS // 2)))
            assert sorted(statuses) == [200] + [409] * (RACERS - 1), statuses
        assert _deliveries(pg_dsn, tmp_path) == EVENTS

    asyncio.run(main())


@pytest.mark.parametrize("backend", BACKENDS)
def test_two_counts_of_the_same_events_replay_once(tmp_path: Path, request: pytest.FixtureRequest, backend: str):
    """Two admins count the same events (different tokens: a delivery was written between the counts) and
    confirm at once: one replay is written, the other is refused as changed."""
    database = _database(request, backend)
    settings = settings_for(_config(tmp_path, database), tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession(headers=auth) as http:
            await _import(database, tmp_path)
            async with http.get(f"{base}/api/v1/replay/bulk?since=2d") as response:
                first = await response.json()
            async with http.get(f"{base}/api/v1/replay/bulk?since=1d") as response:
                second = await response.json()
            assert first["token"] != second["token"] and first["deliveries"] == second["deliveries"] == EVENTS

            async def once(token: str) -> int:
                async with http.post(f"{base}/api/v1/replay/bulk", json={"token": token}) as response:
                    await response.read()
                    return response.status

            statuses = await asyncio.gather(*(once(p["token"]) for p in [first, second] * (RACERS // 2)))
            assert sorted(statuses) == [200] + [409] * (RACERS - 1), statuses
        assert _deliveries(database, tmp_path) == EVENTS

    asyncio.run(main())


@pytest.mark.parametrize("backend", BACKENDS)
def test_concurrent_console_posts_of_one_form_replay_once(tmp_path: Path, request: pytest.FixtureRequest, backend: str):
    database = _database(request, backend)
    settings = settings_for(_config(tmp_path, database), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base:
            await _import(database, tmp_path)
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http:
                async with http.post(f"{base}/console/login", data={"token": TOKEN}) as response:
                    assert response.status == 200
                async with http.get(f"{base}/console/replay") as response:
                    page = await response.text()
                csrf = re.search(r'name="csrf" value="([^"]+)"', page)
                token = re.search(r'name="token" value="([^"]+)"', page)
                assert csrf and token
                # The form submits once in a browser: its button is disabled by the page's script on submit.
                assert "data-submit-once" in page and "/console/static/once.js" in page
                form = {"csrf": csrf.group(1), "token": token.group(1), "back": ""}

                async def once() -> int:
                    async with http.post(
                        f"{base}/console/replay", headers={"Origin": base}, data=form, allow_redirects=False
                    ) as response:
                        await response.read()
                        return response.status

                statuses = await asyncio.gather(*(once() for _ in range(RACERS)))
                assert sorted(statuses) == [303] + [409] * (RACERS - 1), statuses
                async with http.get(f"{base}/console/static/once.js") as response:
                    assert response.status == 200 and "disabled" in await response.text()
        assert _deliveries(database, tmp_path) == EVENTS

    asyncio.run(main())


def _edited(token: str, **change: Any) -> str:
    import base64
    import json

    body = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    for key, value in change.items():
        if key in body:
            body[key] = value
        else:
            body["filter"][key] = value
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


def test_edited_tokens_are_refused_not_errors(tmp_path: Path):
    """A token edited to hold what the event list would refuse (a 1,000-character q, ids past what a database
    stores, an unknown status, an infinite time) answers 404 unknown_token (the API) or 422 (the console)."""
    settings = settings_for(_config(tmp_path, None), tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession(headers=auth) as http:
            async with http.get(f"{base}/api/v1/replay/bulk") as response:
                token = (await response.json())["token"]
            for change in [
                {"q": "x" * 1000},
                {"q": "a" * 201},
                {"max_event_id": 10**30},
                {"mark": 10**30},
                {"max_event_id": 2**63 - 1},
                {"status": "nope"},
                {"source": "s" * 201},
                {"since": 1e308 * 10},
                {"destinations": {"d" * 201: 1}},
            ]:
                edited = _edited(token, **change)
                async with http.post(f"{base}/api/v1/replay/bulk", json={"token": edited}) as response:
                    assert response.status == 404, (change, response.status, await response.text())
                    assert (await response.json())["error"] == "unknown_token"
            async with http.post(f"{base}/api/v1/replay/bulk", json={"token": _edited(token, q="pay_1")}) as response:
                assert response.status == 200  # a q the list accepts is counted (nothing matches: nothing sent)

    asyncio.run(main())
