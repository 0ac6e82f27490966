"""A flood of refused webhooks is counted in memory and sampled to the store: bounded rows per source, reason
and minute, one summary row for the rest, and every refusal still counted."""

from __future__ import annotations

import asyncio
from pathlib import Path

import aiohttp

from headrace.ingest.refusals import RefusalSampler
from headrace.models import Rejection
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

PER_MINUTE = 5
FLOOD = 300


async def stored_rejections(db: Path) -> list[Rejection]:
    store = SQLiteStore(db)
    await store.open()
    try:
        return await store.list_rejections(None, 10_000)
    finally:
        await store.close()


def test_a_flood_of_bad_signatures_writes_a_bounded_sample(tmp_path: Path):
    # One client sends the whole flood at once: over the per-address connection cap (64), which is not what
    # this test is about.
    extra = f"rejections_per_minute = {PER_MINUTE}\nmax_connections_per_peer = {2 * FLOOD}"
    settings = settings_for(config_text(tmp_path / "h.db", free_port(), extra_server=extra), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            body = dodo_body()
            bad = signed_headers(body, "msg_bad", secret=OTHER_SECRET)
            statuses = await asyncio.gather(*(post(http, f"{base}/webhooks/dodo", body, bad) for _ in range(FLOOD)))
            assert {status for status, _ in statuses} == {401}
            for n in range(20):  # invented source names share one sampling slot
                await post(http, f"{base}/webhooks/made-up-{n}", body, bad)
            good = signed_headers(body, "msg_good")
            assert (await post(http, f"{base}/webhooks/dodo", body, good))[0] == 202
            async with http.get(f"{base}/api/v1/rejections") as response:
                answer = await response.json()
            counted = {(c["source"], c["reason"]): c["count"] for c in answer["counted"]}
            assert counted == {("dodo", "bad_signature"): FLOOD, ("(unknown)", "unknown_source"): 20}

    asyncio.run(main())
    rows = asyncio.run(stored_rejections(tmp_path / "h.db"))
    bad_rows = [r for r in rows if r.reason == "bad_signature"]
    unknown_rows = [r for r in rows if r.reason == "unknown_source"]
    # At most PER_MINUTE full rows and one summary per minute the flood touched (it may straddle a boundary).
    assert len(bad_rows) <= 2 * (PER_MINUTE + 1) and len(unknown_rows) <= 2 * (PER_MINUTE + 1)
    summaries = [r for r in bad_rows if "counted" in r.detail]
    assert summaries, [r.detail for r in bad_rows]
    recorded = len(bad_rows) - len(summaries)
    more = sum(int(r.detail.split(" ")[0]) for r in summaries)
    assert recorded + more == FLOOD  # nothing lost from the count, only from the detail


def test_sampler_keeps_the_first_per_minute_and_summarizes_the_rest():
    sampler = RefusalSampler(per_minute=2)
    decisions = [sampler.admit("dodo", "bad_signature", 401, 60.0 + i)[0] for i in range(5)]
    assert decisions == [True, True, False, False, False]
    assert sampler.admit("dodo", "missing_headers", 400, 70.0)[0] is True  # another reason: its own budget
    recorded, summaries = sampler.admit("dodo", "bad_signature", 401, 121.0)  # the next minute
    assert recorded is True
    assert [(s.source, s.reason, s.status, s.detail.split(" ")[0]) for s in summaries] == [
        ("dodo", "bad_signature", 401, "3")
    ]
    assert sampler.due(125.0) == []
    sampler.admit("dodo", "bad_signature", 401, 126.0)
    sampler.admit("dodo", "bad_signature", 401, 127.0)
    assert [s.detail.split(" ")[0] for s in sampler.due(128.0, final=True)] == ["1"]
