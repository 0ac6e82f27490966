"""Outcomes looked up in batches (CONTRACT J7): one `jobs/completed/list` per destination target per round,
per-job looks only where the list cannot answer. End to end against the emulator, and the tracker's choices
with the typed fake."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from headrace.deliver import tracker as tracker_module
from headrace.deliver.tracker import CONFIRM_AFTER, LIST_PAGE, LIST_PAGES, LIST_WINDOW, JobTracker, Listed
from headrace.loopback import AppThread
from headrace.models import JobUpdate, OpenJob
from headrace.windmill.api import JobPoll, ListedJob
from headrace.windmill.client import LIST_LIMIT, WindmillClient
from headrace.windmill.emulator import EmulatorState, EmulatorThread, running_emulator
from headrace.windmill.fake import FakeWindmill, as_api
from headrace.windmill.urls import parse_run_url
from tests.fakes import URL
from tests.helpers import config_text, running_server, settings_for
from tests.integration.test_outcomes import job_states, run_with, send, settings, until

JOB_ID = "0b8c9a55-3f8e-5a2c-9e3f-6c3a1d2e4f50"


def test_J7_outcomes_come_from_one_list_per_round_with_no_per_job_read(tmp_path: Path) -> None:
    """By default (job_results = false) a success costs no request of its own: outcome and duration come from
    the list; test_a_listed_job_takes_its_outcome_and_duration_from_the_list covers reading results."""
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", lambda args: {"booked": args["data"]["payment_id"]}, delay=1.5)
    keys = [f"msg_list_{n}" for n in range(6)]

    async def scenario(emu: EmulatorThread) -> None:
        async with running_server(settings(tmp_path, emu.url())) as base:
            for key in keys:
                assert await send(base, key) in (200, 202)
            done = [await until(base, key, lambda d: job_states(d) == ["success"]) for key in keys]
        for data in done:
            job = data["deliveries"][0]["job"]
            assert job["duration_ms"] >= 1400  # Windmill's duration, from the list
            assert not job["excerpt"]  # the result is not read: the job is one click away in Windmill
        calls = emu.state.calls
        assert calls.get("timing", 0) == 0 and calls.get("job", 0) == 0  # no per-job read
        assert calls["completed_list"] >= 1
        assert calls.get("result_maybe", 0) == 0  # no polls while the jobs ran, no result read after

    run_with(state, scenario)


def make(tmp_path: Path, fake: FakeWindmill, job_results: bool = True) -> JobTracker:
    extra = "retry_on_job_failure = 3" + ("\njob_results = true" if job_results else "")
    text = config_text(tmp_path / "h.db", 1, URL, extra_dest=extra)
    return JobTracker(None, settings_for(text, tmp_path), as_api(fake))  # type: ignore[arg-type]


def open_job(job_id: str = JOB_ID, checks: int = 1, age: float = 5.0) -> OpenJob:
    return OpenJob(1, 1, "payments", 0, job_id, checks, time.time() - age, 0, "dodo", "m")


def answer(tracker: JobTracker, job: OpenJob) -> tuple[Listed, JobUpdate]:
    async def both() -> tuple[Listed, JobUpdate]:
        listed = await tracker.listed([job], time.time())
        return listed, await tracker.answer(job, listed)

    return asyncio.run(both())


def test_a_listed_job_takes_its_outcome_and_duration_from_the_list(tmp_path: Path) -> None:
    fake = FakeWindmill()
    fake.completed = [ListedJob("other", True, 1.0), ListedJob(JOB_ID, True, 3100.0)]
    fake.poll = JobPoll(200, completed=True, success=True, result={"ok": 1})
    fake.duration = 9.0  # get_timing would say this: it is not asked
    listed, update = answer(make(tmp_path, fake), open_job())
    assert JOB_ID in listed.completed and len(fake.lists) == 1
    assert update.state == "success" and update.duration_ms == 3100.0 and update.excerpt == '{"ok": 1}'
    assert [job_id for _, job_id in fake.lookups] == [JOB_ID]  # the result, read once
    fake.lookups.clear()
    _, quiet = answer(make(tmp_path, fake, job_results=False), open_job())
    assert quiet.state == "success" and quiet.duration_ms == 3100.0 and fake.lookups == []


def test_a_covered_job_the_list_does_not_show_stays_open_without_a_lookup(tmp_path: Path) -> None:
    fake = FakeWindmill()
    fake.completed = [ListedJob("other", True, 1.0)]
    listed, update = answer(make(tmp_path, fake), open_job())
    assert JOB_ID in listed.covered and update.state == "open" and fake.lookups == []


def test_jobs_the_list_cannot_answer_are_looked_at_one_by_one(tmp_path: Path) -> None:
    fake = FakeWindmill()
    fake.completed = None  # the list fails
    fake.poll = JobPoll(200, completed=True, success=True, result=1)
    fake.duration = 77.0
    _, update = answer(make(tmp_path, fake), open_job())
    assert update.state == "success" and update.duration_ms == 77.0 and fake.lookups
    for job in (open_job(age=LIST_WINDOW + 1), open_job(checks=CONFIRM_AFTER - 1)):  # too old; a confirming look
        fake.completed, fake.lookups, fake.lists = [ListedJob(JOB_ID, True, 5.0)], [], []
        _, update = answer(make(tmp_path, fake), job)
        assert fake.lists == [] and fake.lookups and update.duration_ms == 77.0
    fake.completed = [ListedJob(f"other-{n}", True, 1.0) for n in range(LIST_PAGE * LIST_PAGES + 1)]
    fake.lookups, fake.lists = [], []
    listed, update = answer(make(tmp_path, fake), open_job())  # the pages ran out before the job's
    assert len(fake.lists) == LIST_PAGES and JOB_ID not in listed.covered and fake.lookups


def test_a_listed_canceled_or_skipped_job_needs_no_second_read(tmp_path: Path) -> None:
    fake = FakeWindmill()
    fake.completed = [ListedJob(JOB_ID, False, 10.0, canceled=True, canceled_by="alice", canceled_reason="by hand")]
    _, canceled = answer(make(tmp_path, fake), open_job())
    assert canceled.state == "failure" and not canceled.rerun and "by alice: by hand" in canceled.excerpt
    assert fake.lookups == []
    fake.completed = [ListedJob(JOB_ID, True, 10.0, is_skipped=True)]
    _, skipped = answer(make(tmp_path, fake, job_results=False), open_job())
    assert skipped.state == "success" and skipped.excerpt.startswith("skipped") and not skipped.rerun
    fake.completed = [ListedJob(JOB_ID, False, 10.0)]
    fake.poll = JobPoll(200, completed=True, success=False, result={"error": {"name": "ValueError", "message": "no"}})
    _, failed = answer(make(tmp_path, fake, job_results=False), open_job())  # a failure's error is always read
    assert failed.state == "failure" and failed.rerun and failed.excerpt == "ValueError: no"


def test_the_per_job_path_alone_when_list_lookups_are_off(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(tracker_module, "LIST_LOOKUPS", False)
    fake = FakeWindmill()
    fake.completed = [ListedJob(JOB_ID, True, 5.0)]
    fake.poll = JobPoll(200, completed=False, started=True)

    class Store:
        async def next_job_check(self) -> float:
            return 0.0

        async def lease_due_jobs(self, *args: object) -> list[OpenJob]:
            return [open_job()]

        async def record_job(self, update: JobUpdate, now: float) -> None:
            return None

    tracker = make(tmp_path, fake)
    tracker.store = Store()  # type: ignore[assignment]
    assert asyncio.run(tracker.round()) == 1
    assert fake.lists == [] and fake.lookups


def test_the_client_reads_a_list_page_up_to_its_cap_and_no_further() -> None:
    item = {"id": JOB_ID, "success": True, "duration_ms": 12, "is_skipped": False, "canceled": False}
    pad = {"id": "pad", "success": True, "duration_ms": 1, "note": "x" * 1000}
    bodies: list[bytes] = []
    queries: list[dict[str, str]] = []

    async def listing(request: web.Request) -> web.Response:
        queries.append(dict(request.query))
        return web.Response(body=bodies.pop(0), content_type="application/json")

    def build() -> web.Application:
        app = web.Application()
        app.router.add_get("/api/w/acme/jobs/completed/list", listing)
        return app

    server = AppThread("list-cap")
    server.serve(build)
    try:
        target = parse_run_url(f"http://127.0.0.1:{server.port}/api/w/acme/jobs/run/p/f/dodo/on_payment")[0]
        fits = [item, "not a job", *[pad] * ((LIST_LIMIT - 2000) // 1100)]
        over = [item, *[pad] * (LIST_LIMIT // 1000)]
        bodies.extend([json.dumps(fits).encode(), json.dumps(over).encode(), b"{}"])

        async def pages() -> list[object]:
            async with aiohttp.ClientSession() as http:
                client = WindmillClient(http)
                return [await client.completed_jobs(target, "t", 0.0, 2, 500) for _ in range(3)]

        read, cut, not_a_list = asyncio.run(pages())
    finally:
        server.stop()
    assert isinstance(read, list) and read[0] == ListedJob(JOB_ID, True, 12.0) and len(read) == len(fits) - 1
    assert cut is None and not_a_list is None  # over the cap, or not a list: the jobs are looked at one by one
    assert queries[0] == {
        "script_path_exact": "f/dodo/on_payment",
        "created_or_started_after": "1970-01-01T00:00:00.000Z",
        "order_desc": "false",
        "per_page": "500",
        "page": "2",
    }


def test_a_backlog_of_newer_jobs_does_not_hide_the_oldest_from_the_list(tmp_path: Path) -> None:
    """The tracker leases the oldest due jobs; the list is asked oldest first (order_desc=false), so more newer
    completed jobs than its pages hold (LIST_PAGES x LIST_PAGE) do not push them out and into one-by-one looks."""
    from headrace.windmill.emulator_model import Job

    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", lambda args: args)
    now = time.time()
    oldest = Job(JOB_ID, "acme", "script", "f/dodo/on_payment", {}, now - 100, started_at=now - 99, duration_ms=5.0)
    state.jobs[oldest.id] = oldest
    for n in range(LIST_PAGE * LIST_PAGES + 100):  # newer, completed, the same script
        job = Job(f"newer-{n}", "acme", "script", "f/dodo/on_payment", {}, now - 50 + n / 1000, started_at=now - 40)
        state.jobs[job.id] = job

    async def scenario(emu: EmulatorThread) -> Listed:
        text = config_text(tmp_path / "h.db", 1, emu.url())
        async with aiohttp.ClientSession() as http:
            tracker = JobTracker(None, settings_for(text, tmp_path), WindmillClient(http))  # type: ignore[arg-type]
            return await tracker.listed([open_job(age=100)], now)

    with running_emulator(state) as emu:
        listed = asyncio.run(scenario(emu))
    assert JOB_ID in listed.completed and listed.completed[JOB_ID].duration_ms == 5.0
    assert emu.state.calls["completed_list"] == 1  # the first page had it


def _completed_job(job_id: str, windmill_created_at: float) -> Any:
    from headrace.windmill.emulator_model import Job

    return Job(job_id, "acme", "script", "f/dodo/on_payment", {}, windmill_created_at, started_at=windmill_created_at)


def _rounds_of_lists(tmp_path: Path, state: EmulatorState, rounds: list[list[OpenJob]]) -> list[Listed]:
    """One tracker (so one memory of Windmill's clock) asking the emulator's list for each round's jobs in turn."""

    async def scenario(emu: EmulatorThread) -> list[Listed]:
        text = config_text(tmp_path / "h.db", 1, emu.url())
        async with aiohttp.ClientSession() as http:
            tracker = JobTracker(None, settings_for(text, tmp_path), WindmillClient(http))  # type: ignore[arg-type]
            return [await tracker.listed(jobs, time.time()) for jobs in rounds]

    with running_emulator(state) as emu:
        return asyncio.run(scenario(emu))


def test_once_a_list_has_shown_jobs_its_window_opens_a_margin_before_the_oldest_not_5_s(tmp_path: Path) -> None:
    """At a few hundred jobs a second the 5 s before the oldest leased job held more completed jobs than the
    list's pages (LIST_PAGES x LIST_PAGE): the leased ones were not reached and went to one-by-one looks (a
    10,000-event burst had its outcomes recorded 98 s after the last job). Once a list has shown a job, the
    window opens LIST_MARGIN before the oldest, by Windmill's clock as the list showed it."""
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", lambda args: args)
    now = time.time()
    first, later = "0b8c9a55-3f8e-5a2c-9e3f-000000000001", JOB_ID
    state.jobs[first] = _completed_job(first, now - 30)
    for n in range(LIST_PAGE * LIST_PAGES + 100):  # completed in the 4 s before `later`, the same script
        state.jobs[f"busy-{n}"] = _completed_job(f"busy-{n}", now - 5 + 3.9 * n / (LIST_PAGE * LIST_PAGES + 100))
    state.jobs[later] = _completed_job(later, now - 1)
    listed = _rounds_of_lists(tmp_path, state, [[open_job(first, age=30)], [open_job(later, age=1)]])
    assert first in listed[0].completed
    assert abs((listed[0].completed[first].created_at or 0) - (now - 30)) < 0.002  # the item's created_at, read
    assert later in listed[1].completed  # on the round's first page
    assert state.calls["completed_list"] == 2


def test_a_windmill_clock_behind_ours_is_learned_and_its_jobs_still_found(tmp_path: Path) -> None:
    """Windmill 3 s behind: a list window opened 1 s before our time would miss its jobs; what the first list
    showed (3 s) opens the next ones 4 s before. (The jobs are made with Windmill's times directly.)"""
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", lambda args: args)
    now = time.time()
    ids = [f"0b8c9a55-3f8e-5a2c-9e3f-00000000000{n}" for n in range(3)]
    for n, job_id in enumerate(ids):
        state.jobs[job_id] = _completed_job(job_id, now - 20 + 5 * n - 3.0)  # created by Windmill's clock
    listed = _rounds_of_lists(tmp_path, state, [[open_job(job_id, age=20 - 5 * n)] for n, job_id in enumerate(ids)])
    assert [job_id in round_.completed for job_id, round_ in zip(ids, listed, strict=True)] == [True, True, True]


def test_a_list_that_shows_none_of_its_jobs_opens_the_next_window_5_s_before_again(tmp_path: Path) -> None:
    """Windmill's clock moved back 3 s after the tracker learned it: the round's list, opened 1 s before, shows
    none of its jobs (they look still running); the next round opens LIST_SKEW before again and finds them."""
    state = EmulatorState()
    state.add_target("script", "f/dodo/on_payment", lambda args: args)
    now = time.time()
    first, moved = "0b8c9a55-3f8e-5a2c-9e3f-000000000001", JOB_ID
    state.jobs[first] = _completed_job(first, now - 30)
    state.jobs[moved] = _completed_job(moved, now - 2 - 3.0)  # made after the clock moved back 3 s
    rounds = [[open_job(first, age=30)], [open_job(moved, age=2)], [open_job(moved, age=2)]]
    listed = _rounds_of_lists(tmp_path, state, rounds)
    assert first in listed[0].completed
    assert moved in listed[1].covered and moved not in listed[1].completed  # missed: it looks still running
    assert moved in listed[2].completed


class Board:
    """A JobBoard of `count` due jobs: leases hand them out in order, records keep each update."""

    def __init__(self, count: int) -> None:
        self.jobs = [open_job(f"job-{n}") for n in range(count)]
        self.leased: list[int] = []  # the size asked for, round by round
        self.updates: list[JobUpdate] = []
        self.writing = self.most_writing = 0

    async def next_job_check(self) -> float:
        return 0.0

    async def lease_due_jobs(self, limit: int, *args: object) -> list[OpenJob]:
        self.leased.append(limit)
        taken, self.jobs = self.jobs[:limit], self.jobs[limit:]
        return taken

    async def record_job(self, update: JobUpdate, now: float) -> None:
        self.writing += 1
        self.most_writing = max(self.most_writing, self.writing)
        await asyncio.sleep(0)  # a write takes a turn of the loop, as the store's group commit does
        self.writing -= 1
        self.updates.append(update)


def test_rounds_grow_while_the_list_answers_every_job_and_shrink_after_a_look_one_by_one(tmp_path: Path) -> None:
    """Outcomes keep up with a busy destination: a full round the list answered whole is followed by one twice
    as big (25, 50, 100, 200, 400, 400), writing its outcomes together, not CONCURRENCY at a time. A job the list
    cannot answer is looked at one by one, and the next round is BATCH again."""
    board = Board(2000)
    fake = FakeWindmill()
    fake.completed = [ListedJob(job.job_id, True, 5.0) for job in board.jobs]
    tracker = make(tmp_path, fake, job_results=False)
    tracker.store = board  # type: ignore[assignment]

    async def rounds(n: int) -> list[int]:
        return [await tracker.round() for _ in range(n)]

    assert asyncio.run(rounds(6)) == [25, 50, 100, 200, 400, 400]
    assert fake.lookups == [] and {u.state for u in board.updates} == {"success"} and len(board.updates) == 1175
    assert board.most_writing > tracker_module.CONCURRENCY  # the outcomes of a round are written together
    fake.completed = None  # the list fails: the next jobs are looked at one by one
    fake.poll = JobPoll(200, completed=False, started=True)
    assert asyncio.run(rounds(2)) == [400, 25]
    assert len(fake.lookups) == 425 and board.leased == [25, 50, 100, 200, 400, 400, 400, 25]
