"""Bulk replay: the dry-run count, the confirmation bound to it, the limit, CSRF, and the console flow in Chromium."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest

from headrace.app import App
from headrace.models import EventFilter
from headrace.ops.bulk import BULK_REPLAY_LIMIT, TOKEN_MAX_CHARS, TooMany
from headrace.store.sqlite import SQLiteStore
from headrace.windmill.emulator import EmulatorThread, Fault, running_emulator
from tests import cdp
from tests.helpers import (
    config_text,
    deployed_windmill,
    dodo_body,
    free_port,
    post,
    running_server,
    settings_for,
    signed_headers,
    wait_for,
)
from tests.integration import test_store_contract as contract

TOKEN = "bulk-admin-token-123"


@pytest.fixture
def emulator():
    with running_emulator(deployed_windmill()) as emu:
        yield emu


def two_destinations(tmp_path: Path, url: str, **kw: Any) -> str:
    """`payments` takes payment.*, `ledger` only payment.succeeded; refunds go nowhere."""
    return (
        config_text(tmp_path / "h.db", free_port(), url, **kw)
        + f"""
[destinations.ledger]
source = "dodo"
events = ["payment.succeeded"]
url = "{url}"
token = "test-token"
retry_schedule = ["10ms"]
timeout = "2s"
"""
    )


async def settled(base: str, http: aiohttp.ClientSession) -> None:
    async def done() -> bool:
        async with http.get(f"{base}/api/v1/events?status=pending") as response:
            return not (await response.json())["events"]

    await wait_for(done)


async def send(base: str, http: aiohttp.ClientSession, event_type: str, webhook_id: str) -> None:
    body = dodo_body(event_type)
    status, _ = await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, webhook_id))
    assert status == 202


async def generations(base: str, http: aiohttp.ClientSession, key: str) -> list[tuple[str, int]]:
    async with http.get(f"{base}/api/v1/events/{key}") as response:
        return sorted((d["destination"], d["generation"]) for d in (await response.json())["deliveries"])


def test_api_counts_per_destination_replays_once_and_never_includes_later_events(tmp_path: Path, emulator):
    settings = settings_for(two_destinations(tmp_path, emulator.url()), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            for event_type, key in [
                ("payment.succeeded", "msg_a"),
                ("payment.succeeded", "msg_b"),
                ("payment.failed", "msg_c"),
                ("refund.succeeded", "msg_r"),
            ]:
                await send(base, http, event_type, key)
            await settled(base, http)
            async with http.get(f"{base}/api/v1/replay/bulk?since=1h") as response:
                everything = await response.json()
            assert everything["events"] == 4 and everything["unrouted_events"] == 1
            async with http.get(f"{base}/api/v1/replay/bulk?type=payment.*&limit=1&before=1") as response:
                assert response.status == 200
                plan = await response.json()
            assert plan["destinations"] == {"ledger": 2, "payments": 3}  # the page parameters are ignored
            assert (plan["events"], plan["deliveries"], plan["unrouted_events"]) == (3, 5, 0)
            assert plan["limit"] == BULK_REPLAY_LIMIT == 10_000

            await send(base, http, "payment.succeeded", "msg_late")  # after the count: never part of it
            await settled(base, http)
            async with http.post(f"{base}/api/v1/replay/bulk", json={"token": plan["token"]}) as response:
                assert response.status == 200, await response.text()
                done = await response.json()
            assert done["deliveries"] == 5 and done["destinations"] == {"ledger": 2, "payments": 3}
            assert len({j for r in done["replayed"] for j in r["job_ids"]}) == 5
            both = [("ledger", 0), ("ledger", 1), ("payments", 0), ("payments", 1)]
            assert await generations(base, http, "msg_a") == both
            assert await generations(base, http, "msg_c") == [("payments", 0), ("payments", 1)]
            assert await generations(base, http, "msg_late") == [("ledger", 0), ("payments", 0)]

            # The same confirmation again (a resubmitted form): refused, the new count shown, nothing sent.
            async with http.post(f"{base}/api/v1/replay/bulk", json={"token": plan["token"]}) as response:
                assert response.status == 409
                refused = await response.json()
            assert refused["error"] == "count_changed" and "nothing was sent" in refused["message"]
            assert refused["now"]["events"] == 3  # the same events counted again: msg_late stays out
            assert len(await generations(base, http, "msg_a")) == 4

            # A single replay between count and confirm changes the count as well.
            async with http.get(f"{base}/api/v1/replay/bulk?type=payment.failed") as response:
                failed_plan = await response.json()
            async with http.post(f"{base}/api/v1/events/msg_c/replay") as response:
                assert response.status == 200
            async with http.post(f"{base}/api/v1/replay/bulk", json={"token": failed_plan["token"]}) as response:
                assert response.status == 409
            assert await generations(base, http, "msg_c") == [("payments", 0), ("payments", 1), ("payments", 2)]

            for body, status, error in [
                ({"token": "x" * (TOKEN_MAX_CHARS + 1)}, 400, "bad_token"),
                ({"token": ""}, 400, "bad_token"),
                ({"token": "bm90IGpzb24"}, 404, "unknown_token"),
                ({"token": plan["token"][:-6]}, 404, "unknown_token"),
                ({"tokens": plan["token"]}, 400, "bad_body"),
                ([], 400, "bad_body"),
            ]:
                async with http.post(f"{base}/api/v1/replay/bulk", json=body) as response:
                    assert response.status == status, body
                    assert (await response.json())["error"] == error, body
            async with http.get(f"{base}/api/v1/replay/bulk?status=lost") as response:
                assert response.status == 400 and "status" in (await response.json())["message"]

    asyncio.run(main())


def _event_rows(first_id: int, count: int, now: float) -> list[dict[str, Any]]:
    return [
        {
            "id": i,
            "source": "dodo",
            "webhook_id": f"msg_bulk_{i}",
            "event_type": "refund.succeeded",
            "webhook_timestamp": int(now),
            "received_at": now,
            "body": b"{}",
            "headers": "{}",
        }
        for i in range(first_id, first_id + count)
    ]


def test_the_limit_at_and_past_it(tmp_path: Path):
    """Exactly BULK_REPLAY_LIMIT matching events are counted; one more is refused by the App and the API."""
    settings = settings_for(config_text(tmp_path / "h.db", free_port()), tmp_path)

    async def main() -> None:
        store = SQLiteStore(tmp_path / "h.db")
        await store.open()
        import time

        now = time.time()
        await store.import_rows("events", _event_rows(1, BULK_REPLAY_LIMIT, now))
        app = App(settings, store)
        plan = await app.replays.plan(EventFilter())
        assert plan.events == BULK_REPLAY_LIMIT and plan.deliveries == 0 and plan.unrouted == BULK_REPLAY_LIMIT
        await store.import_rows("events", _event_rows(BULK_REPLAY_LIMIT + 1, 1, now))
        with pytest.raises(TooMany, match="more than 10000 events"):
            await app.replays.plan(EventFilter())
        with pytest.raises(TooMany):
            await app.replays.plan(EventFilter(before_id=3, limit=1))  # a page of the list is not what is counted
        await store.close()
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            async with http.get(f"{base}/api/v1/replay/bulk") as response:
                assert response.status == 422
                body = await response.json()
            assert body["error"] == "too_many_events" and "narrow it" in body["message"]
            async with http.get(f"{base}/api/v1/replay/bulk?before=3&since=1h") as response:
                assert response.status == 422

    asyncio.run(main())


def csrf_of(page: str) -> str:
    match = re.search(r'name="csrf" value="([^"]+)"', page)
    assert match, "no CSRF token in the page"
    return match.group(1)


def token_of(page: str) -> str:
    match = re.search(r'name="token" value="([^"]+)"', page)
    assert match, "no bulk replay token in the page"
    return match.group(1)


def test_console_confirmation_refuses_other_origins_and_replays_from_its_own_page(tmp_path: Path, emulator):
    settings = settings_for(two_destinations(tmp_path, emulator.url(), admin_token=TOKEN), tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def main() -> None:
        async with running_server(settings) as base:
            async with aiohttp.ClientSession(headers=auth) as api:
                await send(base, api, "payment.succeeded", "msg_a")
                await send(base, api, "payment.failed", "msg_c")
                await settled(base, api)
            jar = aiohttp.CookieJar(unsafe=True)
            async with aiohttp.ClientSession(cookie_jar=jar) as http, aiohttp.ClientSession(headers=auth) as api:
                async with http.post(f"{base}/console/login", data={"token": TOKEN}) as response:
                    assert response.status == 200
                    listing = await response.text()
                assert 'action="/console/replay"' in listing
                async with http.get(f"{base}/console/replay?type=payment.*&before=9") as response:
                    page = await response.text()
                assert response.status == 200
                assert re.search(r"<b>3</b> deliveries will be re-sent, from <b>2</b> matching events", page)
                assert re.search(r">ledger</a></td><td class=\"num\">1<", page)
                assert re.search(r">payments</a></td><td class=\"num\">2<", page)
                form = {"csrf": csrf_of(page), "token": token_of(page), "back": "type=payment.%2A"}
                other = base.rsplit(":", 1)[0] + ":1"
                for headers, data in [
                    ({"Origin": other}, form),
                    ({"Origin": "null"}, form),
                    ({"Origin": base}, {**form, "csrf": "x" * 43}),
                    ({"Origin": base}, {k: v for k, v in form.items() if k != "csrf"}),
                ]:
                    async with http.post(
                        f"{base}/console/replay", headers=headers, data=data, allow_redirects=False
                    ) as response:
                        assert response.status == 403, headers
                        assert (await response.json())["error"] == "cross_site_request"
                assert await generations(base, api, "msg_a") == [("ledger", 0), ("payments", 0)]
                async with http.post(
                    f"{base}/console/replay", headers={"Origin": base}, data=form, allow_redirects=False
                ) as response:
                    assert response.status == 303
                    location = urlsplit(response.headers["Location"])
                assert location.path == "/console/"
                assert parse_qs(location.query) == {"type": ["payment.*"], "bulk_replayed": ["3"], "bulk_events": ["2"]}
                assert len(await generations(base, api, "msg_a")) == 4
                async with http.post(f"{base}/console/replay", headers={"Origin": base}, data=form) as response:
                    assert response.status == 409  # the same form again: the new count, nothing sent
                    assert "have changed" in await response.text()
                assert len(await generations(base, api, "msg_a")) == 4

    asyncio.run(main())


@pytest.mark.skipif(cdp.CHROMIUM is None, reason="Chromium is installed by .ci/run (Debian package chromium)")
def test_chromium_filters_confirms_and_replays(tmp_path: Path, emulator: EmulatorThread):
    """In a real browser, logged in through the form: filter failed events, open the confirmation, replay."""
    emulator.state.inject(Fault("status", count=1, status=403))  # the first delivery fails for good
    settings = settings_for(two_destinations(tmp_path, emulator.url(), admin_token=TOKEN), tmp_path)
    auth = {"Authorization": f"Bearer {TOKEN}"}

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession(headers=auth) as api:
            await send(base, api, "payment.failed", "msg_fail")
            await settled(base, api)
            await send(base, api, "payment.succeeded", "msg_ok")
            await settled(base, api)
            async with cdp.browser() as page:
                await page.goto(f"{base}/console/login")
                await page.evaluate(f"document.querySelector('input[name=token]').value = {json.dumps(TOKEN)}")
                await page.click("form.filters button")
                await page.loaded("/console/")
                await page.goto(f"{base}/console/?status=failed")
                assert "msg_fail" in await page.text() and "msg_ok" not in await page.text()
                await page.click("form.bulk button")
                await page.loaded("/console/replay")
                text = await page.text()
                assert "1 delivery will be re-sent, from 1 matching event " in text
                assert re.search(r"payments\s+1", text) and "ledger" not in text
                await page.screenshot(tmp_path / "confirm.png")
                await page.click("form.filters button")
                url = await page.loaded("/console/")
                assert "bulk_replayed=1" in url and "status=failed" in url
                assert "Bulk replay: 1 new deliveries from 1 events" in await page.text()
            assert await generations(base, api, "msg_fail") == [("payments", 0), ("payments", 1)]
            assert await generations(base, api, "msg_ok") == [("ledger", 0), ("payments", 0)]
        assert (tmp_path / "confirm.png").stat().st_size > 5000

    asyncio.run(main())


@pytest.fixture(params=[pytest.param(n, marks=contract.MARKS.get(n, [])) for n in sorted(contract.FACTORIES)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return lambda: contract.FACTORIES[request.param](request, tmp_path)


def test_store_replays_and_sees_replays_after_its_mark(make_store):
    """On SQLite and PostgreSQL: replay makes the next generation per route; replayed_since names the events
    up to a max id that got a delivery after the mark, and no other."""
    event, routes, run = contract.event, contract.routes, contract.run

    async def scenario(store: Any) -> None:
        first = (await store.ingest(event("msg_1"), routes("a", "b"))).event_id
        second = (await store.ingest(event("msg_2"), routes("a"))).event_id
        mark = await store.delivery_mark()
        assert mark > 0 and await store.replayed_since(mark, second) == []
        job_ids = [await store.replay(first, routes("a", "b"), 2000.0), await store.replay(second, routes("a"), 2000.0)]
        assert [len(ids) for ids in job_ids] == [2, 1] and len({*job_ids[0], *job_ids[1]}) == 3
        detail = await store.get_event(str(first))
        assert sorted((d.destination, d.generation) for d in detail.deliveries) == [
            ("a", 0),
            ("a", 1),
            ("b", 0),
            ("b", 1),
        ]
        assert sorted(await store.replayed_since(mark, second)) == [first, second]
        assert await store.replayed_since(mark, first) == [first]  # events past the max id are not asked about
        assert await store.replayed_since(await store.delivery_mark(), second) == []

    run(make_store, scenario)
