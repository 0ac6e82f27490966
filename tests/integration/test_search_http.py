"""Payload search through the server: `GET /api/v1/events?q=`, the console's search box (also in Chromium),
and `headrace events -q`, on a real SQLite file over loopback HTTP."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from headrace.search import MAX_QUERY_CHARS
from tests.helpers import (
    config_text,
    dodo_body,
    free_port,
    post,
    running_server,
    settings_for,
    signed_headers,
    wait_for,
)
from tests.integration.test_console import CHROMIUM, chromium

CUSTOMERS = [
    ("pay_0NWa1", "cus_A1", "ada@example.com", "Ada Lovelace", "ORD-1"),
    ("pay_0NWb2", "cus_B2", "grace@example.com", "Grace Hopper", "ORD-2"),
    ("pay_0NWc3", "cus_C3", "ada@example.com", "Ada Lovelace", "ORD-3"),
    ("pay_0NWd4", "cus_D4", "linus@example.com", "Linus <b>T</b>", "ORD-4"),
]


async def ingest(base: str, http: aiohttp.ClientSession) -> None:
    for n, (pay, cus, email, name, order) in enumerate(CUSTOMERS, start=1):
        body = dodo_body(
            "payment.succeeded" if n != 2 else "payment.failed",
            payment_id=pay,
            customer={"customer_id": cus, "email": email, "name": name},
            metadata={"order_ref": order},
        )
        status, _ = await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, f"msg_s{n}"))
        assert status == 202

    async def indexed() -> bool:  # serve's indexer, in the background, within about a second
        status, body = await get(http, f"{base}/api/v1/events?q=msg_s{len(CUSTOMERS)}")
        return status == 200 and len(body["events"]) == 1

    await wait_for(indexed, timeout=10.0, interval=0.1)


async def get(http: aiohttp.ClientSession, url: str) -> tuple[int, Any]:
    async with http.get(url) as response:
        return response.status, await response.json()


def ids(body: dict[str, Any]) -> list[str]:
    return [e["webhook_id"] for e in body["events"]]


def test_api_search_filters_pages_and_refuses_a_long_query(tmp_path: Path):
    settings = settings_for(config_text(tmp_path / "h.db", free_port()), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            await ingest(base, http)
            api = f"{base}/api/v1/events"
            assert ids((await get(http, f"{api}?q=pay_0NWc3"))[1]) == ["msg_s3"]
            assert ids((await get(http, f"{api}?q=pay_0NW"))[1]) == ["msg_s4", "msg_s3", "msg_s2", "msg_s1"]
            assert ids((await get(http, f"{api}?q=cus_B2"))[1]) == ["msg_s2"]
            assert ids((await get(http, f"{api}?q=ada%40example.com"))[1]) == ["msg_s3", "msg_s1"]
            assert ids((await get(http, f"{api}?q=grace+hopper"))[1]) == ["msg_s2"]
            assert ids((await get(http, f"{api}?q=ORD-4"))[1]) == ["msg_s4"]
            assert ids((await get(http, f"{api}?q=ada&type=payment.failed"))[1]) == []
            assert ids((await get(http, f"{api}?q=pay_0NW&type=payment.failed"))[1]) == ["msg_s2"]
            assert ids((await get(http, f"{api}?q=pay_0NW&status=unrouted"))[1]) == [
                "msg_s4",
                "msg_s3",
                "msg_s2",
                "msg_s1",
            ]
            assert ids((await get(http, f"{api}?q=pay_0NW&status=failed"))[1]) == []
            assert ids((await get(http, f"{api}?q=nobody"))[1]) == []
            status, page = await get(http, f"{api}?q=pay_0NW&limit=3")
            assert status == 200 and ids(page) == ["msg_s4", "msg_s3", "msg_s2"] and page["next_before"]
            status, rest = await get(http, f"{api}?q=pay_0NW&limit=3&before={page['next_before']}")
            assert ids(rest) == ["msg_s1"] and "next_before" not in rest
            for hostile in ['"', "*", "NEAR(a b)", "-", ":", "'", "\\", "a OR b", "pay_0NW*", "x' | 'y"]:
                status, body = await get(http, f"{api}?q={quote(hostile)}")
                assert status == 200, (hostile, body)
            status, body = await get(http, f"{api}?q={'x' * MAX_QUERY_CHARS}")
            assert status == 200 and body["events"] == []
            status, body = await get(http, f"{api}?q={'x' * (MAX_QUERY_CHARS + 1)}")
            assert status == 400 and body["error"] == "bad_query"
            assert f"q: at most {MAX_QUERY_CHARS} characters (got {MAX_QUERY_CHARS + 1})" in body["message"]
            _, document = await get(http, f"{base}/api/openapi.json")
            [q] = [p for p in document["paths"]["/api/v1/events"]["get"]["parameters"] if p["name"] == "q"]
            assert q["schema"] == {"type": "string", "maxLength": MAX_QUERY_CHARS}

    asyncio.run(main())


def test_console_search_box_keeps_the_query_across_pages(tmp_path: Path):
    settings = settings_for(config_text(tmp_path / "h.db", free_port()), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            await ingest(base, http)
            async with http.get(f"{base}/console/?q=ada%40example.com") as response:
                page = await response.text()
            assert 'name="q"' in page and 'value="ada@example.com"' in page
            assert "msg_s1" in page and "msg_s3" in page and "msg_s2" not in page and "msg_s4" not in page
            async with http.get(f"{base}/console/?q=pay_0NW&limit=1") as response:
                first = await response.text()
            assert "msg_s4" in first and "before=4" in first
            async with http.get(f"{base}/console/?q=pay_0NW&limit=1&before=4") as response:
                second = await response.text()
            # the next page's link carries the search and one `before` (the new one), not the old one too
            assert "msg_s3" in second and "msg_s4" not in second
            assert "q=pay_0NW" in second and "before=3" in second and "before=4" not in second
            async with http.get(f"{base}/console/?q={'x' * (MAX_QUERY_CHARS + 1)}") as response:
                refused = await response.text()
            assert f"q: at most {MAX_QUERY_CHARS} characters" in refused

    asyncio.run(main())


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is installed by .ci/run (Debian package chromium)")
def test_chromium_shows_the_search_results(tmp_path: Path):
    settings = settings_for(config_text(tmp_path / "h.db", free_port()), tmp_path)

    async def main() -> str:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            await ingest(base, http)
            return await asyncio.to_thread(chromium, f"{base}/console/?q=linus", tmp_path / "search.png")

    dom = asyncio.run(main())
    assert "msg_s4" in dom and "msg_s1" not in dom and 'value="linus"' in dom
    assert "<b>T</b>" not in dom  # the payload's markup is never rendered (and not on this page at all)
    assert (tmp_path / "search.png").stat().st_size > 5000


@pytest.mark.slow
def test_cli_events_query(tmp_path: Path):
    settings_text = config_text(tmp_path / "h.db", free_port())
    settings = settings_for(settings_text, tmp_path)
    config = tmp_path / "h.toml"
    config.write_text(settings_text)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            await ingest(base, http)

    asyncio.run(main())

    def events(*args: str) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, "-m", "headrace.cli", "events", "-c", str(config), *args]
        return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)

    listed = events("-q", "ada@example.com", "--json")
    assert [e["webhook_id"] for e in json.loads(listed.stdout)] == ["msg_s3", "msg_s1"], listed.stderr
    paged = events("--query", "pay_0NW", "--type", "payment.succeeded", "--limit", "2", "--before", "4", "--json")
    assert [e["webhook_id"] for e in json.loads(paged.stdout)] == ["msg_s3", "msg_s1"], paged.stderr
    human = events("-q", "Grace")
    assert human.returncode == 0 and "msg_s2" in human.stdout and "msg_s1" not in human.stdout
    refused = events("-q", "x" * (MAX_QUERY_CHARS + 1))
    assert refused.returncode == 2 and f"q: at most {MAX_QUERY_CHARS} characters" in refused.stderr
