"""The console's pictures: the numbers in the SVG are the stored ones, empty windows say so, hostile text is
escaped, the queries read through indexes, and Chromium renders the pages."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from headrace.console import charts
from headrace.models import Activity, Attempt, Delivered, Failed, JobUpdate, NewEvent, Route
from headrace.store.base import Finished
from headrace.store.core import Store
from headrace.store.queries import load
from headrace.store.sqlite import SQLiteStore
from tests import cdp
from tests.helpers import config_text, free_port, running_server, settings_for
from tests.integration import test_store_contract as contract

SVG = "{http://www.w3.org/2000/svg}"
TARGET = "http://127.0.0.1:9/api/w/acme"
UNREACHABLE = f"{TARGET}/jobs/run/p/f/dodo/on_payment"  # nothing is pending: the worker never calls it


@pytest.fixture(params=[pytest.param(n, marks=contract.MARKS.get(n, [])) for n in sorted(contract.FACTORIES)])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    return lambda: contract.FACTORIES[request.param](request, tmp_path)


def new_event(webhook_id: str, at: float, event_type: str = "payment.succeeded") -> NewEvent:
    return NewEvent("dodo", webhook_id, event_type, int(at), at, b"{}", {})


async def deliver(
    store: Store, webhook_id: str, at: float, dest: str, outcome: Any, started: float, ms: float, **kw: Any
) -> int:
    """One event received at `at`, routed to `dest`, whose first attempt started at `started` and took `ms`."""
    await store.ingest(new_event(webhook_id, at, **kw), [Route(dest, TARGET)])
    [claimed] = await store.claim(dest, 1, f"t-{webhook_id}", started, started + 60)
    attempt = Attempt(started_at=started, duration_ms=ms, http_status=201 if isinstance(outcome, Delivered) else 500)
    assert await store.finish(Finished(claimed, f"t-{webhook_id}", attempt, outcome), started + ms / 1000)
    return claimed.delivery_id


async def known_sequence(store: Store, base: float) -> None:
    """Ten one-minute buckets from `base`: see the expected numbers in the test below."""
    first = await deliver(store, "e1", base + 10, "a", Delivered("job-1"), base + 10.5, 500)  # 1.0 s
    await deliver(store, "e2", base + 30, "a", Delivered("job-2"), base + 32, 1000)  # 3.0 s
    await deliver(store, "e3", base + 130, "a", Failed("HTTP 400"), base + 131, 20)
    await store.ingest(new_event("e4", base + 150, "refund.succeeded"), [])  # unrouted
    await deliver(store, "e6", base - 10, "a", Delivered("job-6"), base - 9, 10)  # before the window
    await deliver(store, "e7", base + 600, "a", Delivered("job-7"), base + 601, 10)  # at its end: outside
    await deliver(store, "e8", base + 40, "b", Delivered("job-8"), base + 50, 0)  # 10.0 s, to b
    await store.ingest(new_event("e5", base + 320), [Route("a", TARGET)])  # pending (last: never claimed above)
    failed_job = JobUpdate(first, "failure", completed_at=base + 200, duration_ms=5, excerpt="boom")
    assert await store.record_job(failed_job, base + 200) is None


def numbers(svg: str) -> list[dict[str, str]]:
    root = ET.fromstring(svg)
    return [dict(el.attrib) for el in root.iter() if "data-value" in el.attrib]


def test_the_svg_numbers_are_the_stored_sequence(make_store):
    base = 1_800_000_000.0

    async def scenario(store: Store) -> Activity:
        await known_sequence(store, base)
        everything = await store.activity(base, 60.0, 10, ["a", "b"])
        only_a = await store.activity(base, 60.0, 10, ["a", "b"], "a")
        assert everything.outcomes == {
            0: {"job_failed": 1, "delivered": 2},
            2: {"failed": 1, "unrouted": 1},
            5: {"pending": 1},
        }
        assert everything.latency == {0: (3.0, 10.0, 3)}  # nearest rank over 1.0, 3.0 and 10.0 s
        assert everything.job_failures == {3: 1}
        assert only_a.outcomes == {0: {"job_failed": 1, "delivered": 1}, 2: {"failed": 1}, 5: {"pending": 1}}
        assert only_a.latency == {0: (1.0, 3.0, 2)} and only_a.job_failures == {3: 1}
        return everything

    activity = contract.run(make_store, scenario)
    bars = numbers(charts.outcomes(activity, "t-outcomes"))
    assert sorted((b["data-bucket"], b["data-status"], b["data-value"]) for b in bars) == [
        ("0", "delivered", "2"),
        ("0", "job_failed", "1"),
        ("2", "failed", "1"),
        ("2", "unrouted", "1"),
        ("5", "pending", "1"),
    ]
    stacked = {b["data-status"]: float(b["height"]) for b in bars if b["data-bucket"] == "0"}
    assert stacked["delivered"] == pytest.approx(2 * stacked["job_failed"])  # heights scale with the numbers
    [point] = numbers(charts.latency(activity, "t-latency"))
    assert (point["data-bucket"], point["data-p50-ms"], point["data-p99-ms"], point["data-value"]) == (
        "0",
        "3000.0",
        "10000.0",
        "3",
    )
    [failed] = numbers(charts.job_failures(activity, "t-jobs"))
    assert (failed["data-bucket"], failed["data-value"]) == ("3", "1")
    root = ET.fromstring(charts.outcomes(activity, "t-outcomes"))
    assert root.find(f"{SVG}title").text == "Events received per minute, by outcome"  # type: ignore[union-attr]
    desc = root.find(f"{SVG}desc").text  # type: ignore[union-attr]
    assert "6 events (2 delivered, 1 job_failed, 1 failed, 1 pending, 1 unrouted)" in str(desc)
    hover = [t.text for t in root.iter(f"{SVG}title")]
    assert "08:00 to 08:01 UTC · delivered: 2 of 3 events" in hover  # a bar's <title>: what the browser shows
    assert root.attrib["role"] == "img" and root.attrib["aria-labelledby"] == "t-outcomes-title t-outcomes-desc"


def test_an_empty_window_is_an_empty_chart_that_says_so():
    empty = Activity(1_800_000_000.0, 300.0, 72, {}, {}, {})
    for render, message in [
        (charts.outcomes, "No events in this window."),
        (charts.latency, "No deliveries in this window."),
        (charts.job_failures, "No failed jobs in this window."),
    ]:
        root = ET.fromstring(render(empty, "e"))
        assert numbers(render(empty, "e")) == []
        assert [t.text for t in root.iter(f"{SVG}text") if t.attrib.get("class") == "chart-empty"] == [message]
        assert len(list(root.iter(f"{SVG}line"))) >= 3  # the frame is drawn


def test_counts_of_one_are_singular():
    one = Activity(0.0, 60.0, 5, {1: {"delivered": 1}}, {1: (0.1, 0.2, 1)}, {1: 1})
    two = Activity(0.0, 60.0, 5, {1: {"delivered": 2}}, {1: (0.1, 0.2, 2)}, {1: 2})
    texts = [str(render(one, "s")) for render in (charts.outcomes, charts.latency, charts.job_failures)]
    assert "1 of 1 event<" in texts[0] and ": 1 event (" in texts[0]
    assert "· 1 delivery<" in texts[1] and ": 1 delivery;" in texts[1]
    assert "· 1 failed job<" in texts[2] and ": 1 failed job." in texts[2]
    assert all("1 deliveries" not in t and "1 events" not in t and "1 failed jobs" not in t for t in texts)
    plural = [str(render(two, "p")) for render in (charts.outcomes, charts.latency, charts.job_failures)]
    assert "2 of 2 events<" in plural[0] and "· 2 deliveries<" in plural[1] and "· 2 failed jobs<" in plural[2]


def test_hostile_text_is_escaped_in_the_svg():
    hostile = ' to <script>alert("x")</script> & </svg><img src=x onerror=alert(1)>'
    activity = Activity(0.0, 60.0, 5, {1: {"delivered": 1, "<b>odd</b>": 2}}, {1: (0.1, 0.2, 1)}, {1: 1})
    for render in (charts.outcomes, charts.latency, charts.job_failures):
        svg = str(render(activity, 'x" onload="alert(1)', hostile))
        assert "<script" not in svg and "<img" not in svg and "<b>" not in svg and 'x" onload' not in svg
        root = ET.fromstring(svg)  # well-formed: nothing broke out of its element or attribute
        assert root.find(f"{SVG}title").text.endswith(hostile)  # type: ignore[union-attr]
        assert root.attrib["id"] == 'x" onload="alert(1)'


def test_the_chart_queries_read_a_time_window_through_indexes(tmp_path: Path):
    """SQLite's plans: no chart or error query scans a whole table (only the materialized window itself)."""

    async def create() -> None:
        store = SQLiteStore(tmp_path / "plan.db")
        await store.open()
        await store.close()

    asyncio.run(create())
    conn = sqlite3.connect(tmp_path / "plan.db")
    queries = load("sqlite")
    params = {"since": 0.0, "until": 1.0, "step": 60.0, "destination": "a", "status": "failed", "limit": 10}
    expected = {
        "chart_outcomes": "events_received_at",
        "chart_latencies": "events_received_at",
        "chart_job_failures": "deliveries_jobs_failed",
        "destination_delivery_errors": "deliveries_failed",  # status = failed: the partial index of failed rows
        "destination_job_errors": "deliveries_jobs_failed",
    }
    for name, index in expected.items():
        for destination in ("a", None):
            plan = [
                row[3]
                for row in conn.execute("EXPLAIN QUERY PLAN " + queries[name], {**params, "destination": destination})
            ]
            scans = [line for line in plan if line.startswith("SCAN") and line != "SCAN bucketed"]
            assert scans == [], (name, destination, plan)
            assert any(index in line for line in plan), (name, plan)
            if name.startswith("chart_") and name != "chart_job_failures":
                assert any("received_at>? AND received_at<?" in line for line in plan), (name, plan)
    conn.close()


def page_svgs(page: str) -> dict[str, ET.Element]:
    return {
        m.group(1): ET.fromstring(m.group(0))
        for m in re.finditer(r'<svg class="chart[^"]*" id="([^"]+)".*?</svg>', page, re.S)
    }


async def seeded(path: Path, now: float) -> None:
    """A real SQLite database with a known half hour: two delivered, one failed with a hostile error."""
    store = SQLiteStore(path)
    await store.open()
    try:
        await deliver(store, "msg_ok1", now - 1800, "payments", Delivered("j1"), now - 1799.8, 100)  # 0.3 s
        await deliver(store, "msg_ok2", now - 1790, "payments", Delivered("j2"), now - 1789.5, 200)  # 0.7 s
        evil = '<script>alert("err")</script> & <img src=x onerror=alert(2)>'
        await deliver(store, 'msg_<b>"x"</b>', now - 1700, "payments", Failed(evil), now - 1699, 5)
    finally:
        await store.close()


def test_events_and_destination_pages_show_the_charts_and_escaped_errors(tmp_path: Path):
    now = time.time()
    asyncio.run(seeded(tmp_path / "h.db", now))
    settings = settings_for(config_text(tmp_path / "h.db", free_port(), UNREACHABLE), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, aiohttp.ClientSession() as http:
            async with http.get(f"{base}/console/") as response:
                page = await response.text()
            svgs = page_svgs(page)
            assert set(svgs) == {"chart-all-outcomes", "chart-all-latency", "chart-all-jobs"}
            desc = svgs["chart-all-outcomes"].find(f"{SVG}desc").text  # type: ignore[union-attr]
            assert "3 events (2 delivered, 1 failed)" in str(desc)
            points = [el.attrib for el in svgs["chart-all-latency"].iter() if "data-p50-ms" in el.attrib]
            assert sum(int(p["data-value"]) for p in points) == 2
            async with http.get(f"{base}/console/?window=1h") as response:
                assert "Events received per minute" in await response.text()
            async with http.get(f"{base}/console/?window=7y") as response:
                assert "Events received per 5 minutes" in await response.text()  # unknown: the default 6h
            async with http.get(f"{base}/console/destinations") as response:
                assert 'href="/console/destinations/payments"' in await response.text()
            async with http.get(f"{base}/console/destinations/payments") as response:
                assert response.status == 200
                dest = await response.text()
            assert set(page_svgs(dest)) == {"chart-dest-outcomes", "chart-dest-latency", "chart-dest-jobs"}
            assert "&lt;script&gt;alert(&#34;err&#34;)&lt;/script&gt; &amp; &lt;img src=x onerror=alert(2)&gt;" in dest
            assert "msg_&lt;b&gt;&#34;x&#34;&lt;/b&gt;" in dest
            assert "<script>" not in dest and "<img" not in dest and '<b>"x"' not in dest
            async with http.get(f"{base}/console/destinations/%3Cscript%3Ex") as response:
                assert response.status == 404
                missing = await response.text()
            assert "No destination &lt;script&gt;x" in missing and "<script>x" not in missing

    asyncio.run(main())


@pytest.mark.skipif(cdp.CHROMIUM is None, reason="Chromium is installed by .ci/run (Debian package chromium)")
def test_chromium_renders_the_charts(tmp_path: Path):
    now = time.time()
    asyncio.run(seeded(tmp_path / "h.db", now))
    settings = settings_for(config_text(tmp_path / "h.db", free_port(), UNREACHABLE), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, cdp.browser(1280, 1100) as page:
            await page.goto(f"{base}/console/")
            sizes = await page.evaluate(
                "[...document.querySelectorAll('svg.chart')]"
                ".map(s => [s.id, s.getBoundingClientRect().width, s.getBoundingClientRect().height])"
            )
            assert [s[0] for s in sizes] == ["chart-all-outcomes", "chart-all-latency", "chart-all-jobs"]
            assert all(w > 400 and h > 60 for _, w, h in sizes), sizes
            fill = await page.evaluate("getComputedStyle(document.querySelector('rect.bar-delivered')).fill")
            assert fill == "rgb(47, 158, 87)"  # console.css reached the SVG under the CSP
            await page.screenshot(tmp_path / "events.png")
            await page.goto(f"{base}/console/destinations/payments")
            assert "Last errors" in await page.text()
            await page.screenshot(tmp_path / "destination.png")

    asyncio.run(main())
    assert (tmp_path / "events.png").stat().st_size > 10_000


def test_chart_numbers_are_reused_for_fifteen_seconds(tmp_path: Path):
    from headrace.app import App
    from headrace.ops.charts import CHART_CACHE

    now = [time.time()]
    settings = settings_for(config_text(tmp_path / "h.db", free_port(), UNREACHABLE), tmp_path)

    async def main() -> None:
        store = SQLiteStore(tmp_path / "h.db")
        await store.open()
        try:
            app = App(settings, store, clock=lambda: now[0])
            await store.ingest(new_event("c1", now[0] - 60), [])

            async def events(destination: str | None = None) -> int:
                found = await app.charts.activity("6h", destination)
                return sum(sum(c.values()) for c in found.outcomes.values())

            assert await events() == 1
            await store.ingest(new_event("c2", now[0] - 30), [])
            assert await events() == 1  # the page was reloaded: the same numbers
            assert await events("payments") == 0  # another destination is another entry
            now[0] += CHART_CACHE
            assert await events() == 2
        finally:
            await store.close()

    asyncio.run(main())
