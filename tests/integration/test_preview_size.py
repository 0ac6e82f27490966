"""A preview whose script makes a payload past the destination's payload_limit answers with the refusal and
without the payload (build_request refuses it before the answer is built): a regression test, not a fix."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp

from tests.helpers import config_text, free_port, running_server, settings_for

BIG = """function handler(w) {
  w.payload = { blob: "x".repeat(3 * 1024 * 1024) };
  return w;
}"""
CANCEL_BIG = """function handler(w) {
  w.payload = { blob: "x".repeat(3 * 1024 * 1024) };
  w.cancel = true;
  return w;
}"""


def test_a_preview_past_payload_limit_leaves_the_payload_out(tmp_path: Path) -> None:
    url = "http://127.0.0.1:9/api/w/ws/jobs/run/p/f/dodo/on_event"
    settings = settings_for(config_text(tmp_path / "h.db", free_port(), url, extra_dest='schema = "off"'), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            for script in (BIG, CANCEL_BIG):
                spec = {"destination": "payments", "script": script, "event_type": "payment.succeeded"}
                async with http.post(f"{base}/api/v1/preview", json=spec) as response:
                    raw = await response.read()
                    assert response.status == 200, raw[:300]
                answer = json.loads(raw)
                assert len(raw) < 200_000, len(raw)
                assert answer["payload"] is None and answer["would_send"] is False
                assert "payload_limit" in answer["error"]["message"], answer["error"]

    asyncio.run(main())


def test_a_large_answer_is_serialised_while_the_loop_keeps_running() -> None:
    """The preview's answer (up to payload_limit, 64 MiB at most, twice: as JSON and as text) is written as
    JSON off the event loop: other tasks run meanwhile."""
    from headrace.http.access import json_answer

    async def main() -> None:
        ticks = 0
        done = False

        async def ticker() -> None:
            nonlocal ticks
            while not done:
                ticks += 1
                await asyncio.sleep(0)

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        before = ticks
        big = {"payload": ["x" * 64] * 200_000, "body": "y" * 8_000_000}
        response = await json_answer(big)
        during = ticks - before
        done = True
        await task
        assert response.status == 200 and response.content_type == "application/json"
        assert json.loads(response.text or "") == big
        assert during > 1, "the event loop ran nothing while the answer was serialised"

    asyncio.run(main())
