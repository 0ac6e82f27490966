"""POST /webhooks/{source} over real HTTP on loopback against a real SQLite file: every answer of the contract."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp

from headrace.models import EventFilter
from headrace.store.sqlite import SQLiteStore
from tests.helpers import (
    OTHER_SECRET,
    config_text,
    dodo_body,
    free_port,
    post,
    running_server,
    settings_for,
    signed_headers,
)


def scenario(tmp_path: Path, body_limit: int = 1_048_576):
    settings = settings_for(
        config_text(tmp_path / "h.db", free_port(), extra_server=f"body_limit = {body_limit}"), tmp_path
    )
    return settings


async def stored_events(tmp_path: Path) -> list:
    store = SQLiteStore(tmp_path / "h.db")
    await store.open()
    try:
        return await store.list_events(EventFilter(limit=1000))
    finally:
        await store.close()


def test_every_answer_of_the_ingest_contract(tmp_path: Path):
    settings = scenario(tmp_path, body_limit=4096)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            url = f"{base}/webhooks/dodo"
            body = dodo_body()
            accepted = await post(http, url, body, signed_headers(body, "msg_ok"))
            assert accepted[0] == 202 and accepted[1]["status"] == "accepted"
            duplicate = await post(http, url, body, signed_headers(body, "msg_ok"))
            assert duplicate[0] == 200 and duplicate[1] == {"status": "duplicate", "event_id": accepted[1]["event_id"]}
            for webhook_id, status in (("msg_text", 202), ("msg_text", 200)):  # the JSON as json.dumps writes it
                async with http.post(url, data=body, headers=signed_headers(body, webhook_id)) as response:
                    text = await response.text()
                    assert response.status == status and response.content_type == "application/json"
                    assert response.charset == "utf-8" and text == json.dumps(json.loads(text))

            cases = []
            headers = signed_headers(body, "msg_missing")
            del headers["webhook-signature"]
            cases.append(("missing header", url, body, headers, 400, "missing_headers"))
            cases.append(
                ("bad signature", url, body, signed_headers(body, "msg_bad", secret=OTHER_SECRET), 401, "bad_signature")
            )
            cases.append(
                (
                    "old timestamp",
                    url,
                    body,
                    signed_headers(body, "msg_old", ts=int(time.time()) - 301),
                    401,
                    "timestamp_out_of_tolerance",
                )
            )
            cases.append(
                (
                    "unknown source",
                    f"{base}/webhooks/stripe",
                    body,
                    signed_headers(body, "msg_s"),
                    404,
                    "unknown_source",
                )
            )
            big = dodo_body(note="x" * 5000)
            cases.append(("too large", url, big, signed_headers(big, "msg_big"), 413, "body_too_large"))
            array = b"[1, 2, 3]"
            cases.append(("not an object", url, array, signed_headers(array, "msg_arr"), 400, "not_an_object"))
            garbage = b"{not json"
            cases.append(("not json", url, garbage, signed_headers(garbage, "msg_garbage"), 400, "invalid_json"))
            for name, target, data, hdrs, status, reason in cases:
                got_status, got = await post(http, target, data, hdrs)
                assert (got_status, got["error"]) == (status, reason), name
                assert got["message"], name

            async with http.get(f"{base}/api/v1/rejections") as response:
                rejections = await response.json()
            counts = {(c["source"], c["reason"]): c["count"] for c in rejections["counts"]}
            assert counts == {
                ("dodo", "missing_headers"): 1,
                ("dodo", "bad_signature"): 1,
                ("dodo", "timestamp_out_of_tolerance"): 1,
                ("stripe", "unknown_source"): 1,
                ("dodo", "body_too_large"): 1,
                ("dodo", "not_an_object"): 1,
                ("dodo", "invalid_json"): 1,
            }
            assert all(r["remote"] == "127.0.0.1" for r in rejections["rejections"])
            assert "xxxxx" not in str(rejections)  # no bodies

        events = await stored_events(tmp_path)
        assert sorted(e.webhook_id for e in events) == ["msg_ok", "msg_text"]  # nothing stored for any 4xx

    asyncio.run(main())


def test_concurrent_duplicates_are_stored_once(tmp_path: Path):
    settings = scenario(tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            body = dodo_body()
            answers = await asyncio.gather(
                *(post(http, f"{base}/webhooks/dodo", body, signed_headers(body, f"msg_{i % 5}")) for i in range(50))
            )
        statuses = sorted(status for status, _ in answers)
        assert statuses.count(202) == 5 and statuses.count(200) == 45
        assert len(await stored_events(tmp_path)) == 5

    asyncio.run(main())


def test_health_and_admin_token(tmp_path: Path):
    text = config_text(tmp_path / "h.db", free_port(), admin_token="s3cret-admin-token")
    settings = settings_for(text, tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            for path in ("/healthz", "/readyz", "/api/openapi.json"):
                async with http.get(base + path) as response:
                    assert response.status == 200, path
            async with http.get(f"{base}/api/v1/events") as response:
                assert response.status == 401
                assert "s3cret-admin-token" not in await response.text()
            async with http.get(f"{base}/api/v1/events", headers={"Authorization": "Bearer wrong"}) as response:
                assert response.status == 401
            async with http.get(f"{base}/api/v1/events", headers={"Authorization": "Bearer s3cret-admin-token"}) as r:
                assert r.status == 200 and (await r.json())["events"] == []
            async with http.get(
                f"{base}/api/v1/events?status=bogus", headers={"Authorization": "Bearer s3cret-admin-token"}
            ) as r:
                assert r.status == 400 and "status" in (await r.json())["message"]

    asyncio.run(main())


def test_openapi_lists_every_api_route(tmp_path: Path):
    from aiohttp import web

    from headrace.api.openapi import document
    from headrace.api.routes import PREFIX, build

    app = web.Application()
    app.add_subapp(PREFIX, build(None))  # type: ignore[arg-type]  # routes only, never served
    documented = {(path, method.upper()) for path, ops in document()["paths"].items() for method in ops}
    routed = {
        (r.resource.canonical, r.method)
        for r in app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/v1") and r.method != "HEAD"
    }
    assert routed == documented


def test_management_is_closed_without_a_token_and_ingest_still_works(tmp_path: Path):
    settings = settings_for(
        config_text(tmp_path / "h.db", free_port(), extra_server="open_management = false"), tmp_path
    )
    assert settings.server.management == "closed"

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            for path in (
                "/api/v1/events",
                "/api/v1/rejections",
                "/metrics",
                "/console/",
                "/console/rejections",
                "/console/login",
            ):
                async with http.get(base + path, allow_redirects=False) as response:
                    assert response.status == 403, path
                    assert "admin_token" in (await response.json())["message"], path
            async with http.post(f"{base}/api/v1/replay", json={"failed": True, "since": "1h"}) as response:
                assert response.status == 403
            for path in ("/healthz", "/readyz", "/api/openapi.json"):
                async with http.get(base + path) as response:
                    assert response.status == 200, path
            body = dodo_body()
            assert (await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, "msg_c")))[0] == 202

    asyncio.run(main())
