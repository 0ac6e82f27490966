"""`[server] access_log = true`: a line per API, console, /metrics and health request; none per webhook; never a
query string or a token. Off by default."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import aiohttp
import pytest

from tests.helpers import config_text, dodo_body, free_port, running_server, settings_for, signed_headers

TOKEN = "access-log-admin-token-0123456789"


def served(tmp_path: Path, extra: str, caplog: pytest.LogCaptureFixture) -> list[str]:
    settings = settings_for(
        config_text(tmp_path / "h.db", free_port(), admin_token=TOKEN, extra_server=extra), tmp_path
    )

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            async with http.get(f"{base}/metrics", headers=auth) as response:
                assert response.status == 200
            async with http.get(f"{base}/api/v1/events?q=secret-query-text", headers=auth) as response:
                assert response.status == 200
            async with http.get(f"{base}/console/", allow_redirects=False) as response:
                assert response.status == 303
            async with http.get(f"{base}/healthz") as response:
                assert response.status == 200
            body = dodo_body()
            async with http.post(f"{base}/webhooks/dodo", data=body, headers=signed_headers(body, "msg_1")) as r:
                assert r.status == 202

    with caplog.at_level(logging.INFO, logger="headrace.access"):
        asyncio.run(main())
    return [r.getMessage() for r in caplog.records if r.name == "headrace.access"]


def test_the_access_log_names_requests_and_never_webhooks_queries_or_tokens(tmp_path: Path, caplog):
    lines = served(tmp_path, "access_log = true", caplog)
    assert [line.rsplit(" ", 2)[0] for line in lines] == [
        "GET /metrics 200",
        "GET /api/v1/events 200",
        "GET /console/ 303",
        "GET /healthz 200",
    ]
    text = "\n".join(lines)
    assert "webhooks" not in text and "secret-query-text" not in text and TOKEN not in text


def test_no_access_log_by_default(tmp_path: Path, caplog):
    assert served(tmp_path, "", caplog) == []
