"""The server's sandbox (`make_sandbox()`): no script can stall the event loop, and every run ends in bounded time.

A long native operation (BigInt to string, `normalize` on megabytes) never reaches QuickJS's interrupt check,
so only a separate process with a wall-clock deadline can stop it. These tests run the real worker processes
and a real event loop; on the old in-process sandbox the loop froze for seconds and the runs took 6-20 s.
"""

from __future__ import annotations

import asyncio
import json
import os
import pathlib
import signal
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from headrace.app import make_sandbox
from headrace.dodo import samples
from headrace.transform import Sandbox, Script, TransformError, WebhookObject
from headrace.transform.pool import ProcessPoolSandbox
from headrace.transform.quickjs_sandbox import QuickJSSandbox
from headrace.transform.scripts import load_script

URL = "https://windmill.example/api/w/acme/jobs/run/f/f/dodo/on_payment"
LIMIT_S = 0.2  # the sandbox's CPU limit
BOUND_S = 2 * LIMIT_S + 0.25  # the promise: an over-limit run fails within 2x the limit plus a small constant
BIGINT = Script(
    "bigint.js", "function handler(w) {\n  for (let i = 0; i < 4; i++) String(10n ** 300000n);\n  return w;\n}"
)
NFKC = Script(
    "nfkc.js",
    "function handler(w) {\n  w.payload = { n: '\\uFB01x\\u1E9B\\u0323'.repeat(1 << 20).normalize('NFKC').length };\n"
    "  return w;\n}",
)
# Event-loop lateness allowed while a hostile script runs. Alone on 2 cores it is ~1 ms (bench/transform.py);
# the margin is for a loaded test machine (the suite runs beside PostgreSQL, MariaDB and Chromium). In-process
# the loop was held for the whole 6-25 s, so the bound still tells the two apart by two orders of magnitude.
LOOP_P99_MS = 50
# Waiting behind a hung run means waiting for its wall-clock limit (400 ms): a run beside one that takes less
# than this did not queue behind it, on a machine however loaded.
BESIDE_S = 0.25
IDENTITY = Script("identity.js", "function handler(w) { w.payload = { ok: w.eventType }; return w }")


def webhook(payload: Any = None) -> WebhookObject:
    return WebhookObject("payment.succeeded", payload or samples.load("payment.succeeded"), URL, webhook_id="msg_1")


def with_sandbox(body: Callable[[Sandbox], Awaitable[None]]) -> Callable[[], None]:
    """A test: run `body` on a fresh event loop with a fresh `make_sandbox()`, closed afterwards."""

    def test() -> None:
        async def main() -> None:
            opened = make_sandbox()
            try:
                await body(opened)
            finally:
                await opened.close()

        asyncio.run(main())

    test.__name__ = body.__name__
    test.__doc__ = body.__doc__
    return test


def pids_of(sandbox: Sandbox) -> list[int]:
    pids: Callable[[], list[int]] = getattr(sandbox, "pids")  # noqa: B009 - the pool's diagnostic, absent in-process
    return pids()


def proc(pid: int, name: str = "") -> pathlib.Path:
    return pathlib.Path(f"/proc/{pid}") / name


def exists(pid: int) -> bool:
    """A zombie (killed, not reaped) still has /proc/PID; a reaped process has not."""
    return proc(pid).exists()


def children() -> set[int]:
    return {int(pid) for pid in proc(os.getpid(), f"task/{os.getpid()}/children").read_text().split()}


class Ticker:
    """Measures how late the event loop wakes a 1 ms sleeper: the loop's responsiveness to everything else."""

    def __init__(self) -> None:
        self.lateness: list[float] = []
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.001)
            self.lateness.append(time.perf_counter() - start - 0.001)

    def __enter__(self) -> Ticker:
        self._task = asyncio.get_running_loop().create_task(self._run())
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()

    def p99_ms(self) -> float:
        ordered = sorted(self.lateness)
        return ordered[int(len(ordered) * 0.99)] * 1000


async def fails_in_time(sandbox: Sandbox, script: Script) -> tuple[TransformError, float]:
    start = time.perf_counter()
    with pytest.raises(TransformError) as caught:
        await sandbox.transform(script, webhook())
    return caught.value, time.perf_counter() - start


@with_sandbox
async def test_event_loop_keeps_answering_while_a_bigint_script_runs(sandbox: Sandbox) -> None:
    await sandbox.transform(IDENTITY, webhook())  # a warm process, so the run below is the script alone
    with Ticker() as ticker:
        error, elapsed = await fails_in_time(sandbox, BIGINT)
        await asyncio.sleep(0.05)
    assert len(ticker.lateness) > 100, f"the loop woke the ticker only {len(ticker.lateness)} times in {elapsed:.2f} s"
    assert ticker.p99_ms() < LOOP_P99_MS, f"event loop p99 lateness {ticker.p99_ms():.1f} ms while the script ran"
    assert max(ticker.lateness) < 2 * LOOP_P99_MS / 1000
    assert error.limit == "wall"
    assert "bigint.js: handler exceeded the wall-clock limit of 400 ms" in str(error)
    assert elapsed < BOUND_S, f"the over-limit run took {elapsed:.2f} s to fail"


@with_sandbox
async def test_healthz_on_the_same_loop_answers_while_normalize_runs_on_megabytes(sandbox: Sandbox) -> None:
    async def healthz(request: web.Request) -> web.Response:
        return web.Response(text="ok")

    server = web.Application()
    server.router.add_get("/healthz", healthz)
    runner = web.AppRunner(server)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    await sandbox.transform(IDENTITY, webhook())
    latencies: list[float] = []
    try:
        async with aiohttp.ClientSession() as http:

            async def probe() -> None:
                while True:
                    start = time.perf_counter()
                    async with http.get(f"http://127.0.0.1:{port}/healthz") as response:
                        assert await response.text() == "ok"
                    latencies.append(time.perf_counter() - start)
                    await asyncio.sleep(0.002)

            prober = asyncio.create_task(probe())
            error, elapsed = await fails_in_time(sandbox, NFKC)
            prober.cancel()
    finally:
        await runner.cleanup()
    assert len(latencies) > 50
    p99 = sorted(latencies)[int(len(latencies) * 0.99)] * 1000
    assert p99 < LOOP_P99_MS, f"/healthz p99 {p99:.1f} ms (median {statistics.median(latencies) * 1000:.1f} ms)"
    assert error.limit == "wall", error
    assert "nfkc.js" in str(error) and "400 ms" in str(error)
    assert elapsed < BOUND_S


@with_sandbox
async def test_the_pool_recovers_after_an_overrun(sandbox: Sandbox) -> None:
    await sandbox.transform(IDENTITY, webhook())
    [before] = pids_of(sandbox)
    await fails_in_time(sandbox, BIGINT)
    assert before not in pids_of(sandbox), "the overrunning process must be gone"
    assert not exists(before), "killed and reaped, not a zombie"
    await asyncio.sleep(0.5)  # the replacement starts in the background
    ready = pids_of(sandbox)
    assert len(ready) == 1
    result = await sandbox.transform(IDENTITY, webhook())
    assert result.payload == {"ok": "payment.succeeded"}
    assert pids_of(sandbox) == ready, "the next run found the warm replacement (no process started for it)"


@with_sandbox
async def test_a_killed_worker_process_is_a_transform_error_not_a_hang(sandbox: Sandbox) -> None:
    await sandbox.transform(IDENTITY, webhook())
    [pid] = pids_of(sandbox)
    spin = Script("spin.js", "function handler(w) { for (;;) {} }")
    running = asyncio.create_task(sandbox.transform(spin, webhook()))
    await asyncio.sleep(0.05)
    os.kill(pid, signal.SIGKILL)
    start = time.perf_counter()
    with pytest.raises(TransformError) as caught:
        await running
    assert time.perf_counter() - start < BESIDE_S, "the death is noticed at once, not at the wall-clock limit"
    assert caught.value.limit == "process"
    assert "spin.js: the sandbox process running the handler died (killed by signal 9)" in str(caught.value)
    assert (await sandbox.transform(IDENTITY, webhook())).payload == {"ok": "payment.succeeded"}


@with_sandbox
async def test_other_runs_do_not_queue_behind_a_hung_script(sandbox: Sandbox) -> None:
    await warm(sandbox)
    hung = asyncio.create_task(fails_in_time(sandbox, BIGINT))
    await asyncio.sleep(0.02)
    timings = []
    while not hung.done():
        start = time.perf_counter()
        await asyncio.gather(*(sandbox.transform(IDENTITY, webhook()) for _ in range(3)))
        timings.append(time.perf_counter() - start)
    error, _ = await hung
    assert error.limit == "wall"
    assert len(timings) >= 3, "the runs beside the hung one should have completed several times over"
    assert max(timings) < BESIDE_S, f"three runs beside a hung one took up to {max(timings) * 1000:.0f} ms"


async def warm(sandbox: Sandbox) -> None:
    """Start all 4 processes (one script may use only 3 at once)."""
    other = Script("other.js", IDENTITY.source)
    await asyncio.gather(*(sandbox.transform(script, webhook()) for script in (IDENTITY, IDENTITY, other, other)))
    assert len(pids_of(sandbox)) == 4


@with_sandbox
async def test_one_script_stuck_at_its_limit_cannot_take_every_process(sandbox: Sandbox) -> None:
    """Six runs of one hostile script (one destination's) and 4 processes: another script still runs at once."""
    await warm(sandbox)
    hung = [asyncio.create_task(fails_in_time(sandbox, BIGINT)) for _ in range(6)]
    await asyncio.sleep(0.05)
    start = time.perf_counter()
    result = await sandbox.transform(IDENTITY, webhook())
    took = time.perf_counter() - start
    assert result.payload == {"ok": "payment.succeeded"}
    assert not any(task.done() for task in hung), "the hostile runs should still be going"
    assert took < BESIDE_S, f"another script waited {took * 1000:.0f} ms behind one script's hung runs"
    for error, _ in await asyncio.gather(*hung):
        assert error.limit == "wall"


def test_close_leaves_no_child_processes() -> None:
    asyncio.run(close_leaves_no_child_processes())


async def close_leaves_no_child_processes() -> None:
    sandbox = make_sandbox()
    spin = Script("spin.js", "function handler(w) { for (;;) {} }")
    await asyncio.gather(*(sandbox.transform(IDENTITY, webhook()) for _ in range(4)))
    pids = pids_of(sandbox)
    assert len(pids) >= 2
    running = asyncio.create_task(sandbox.transform(spin, webhook()))
    await asyncio.sleep(0.02)
    start = time.perf_counter()
    await sandbox.close()
    assert time.perf_counter() - start < BOUND_S, "close waits at most for the run in progress"
    with pytest.raises(TransformError):
        await running
    for pid in pids:
        assert not exists(pid), f"sandbox process {pid} still exists (zombie?)"
    assert not children() & set(pids)
    with pytest.raises(TransformError, match="shut down"):
        await sandbox.transform(IDENTITY, webhook())


@with_sandbox
async def test_limits_and_errors_come_back_from_the_process(sandbox: Sandbox) -> None:
    memory = Script(
        "memory.js", "function handler(w) {\n  const a = [];\n  for (;;) a.push(new Float64Array(1 << 20));\n}"
    )
    error, _ = await fails_in_time(sandbox, memory)
    assert error.limit == "memory" and "memory limit of 64 MiB" in str(error)
    cpu = Script("cpu.js", "function handler(w) {\n  for (;;) {}\n}")
    error, elapsed = await fails_in_time(sandbox, cpu)
    # Alone it stops at the CPU limit; on a machine so loaded that the process cannot get 200 ms of CPU in
    # 400 ms, the wall-clock limit stops it first, and says so.
    assert error.limit in ("cpu", "wall"), error
    if error.limit == "cpu":
        assert "CPU time limit of 200 ms" in str(error)
    assert elapsed < BOUND_S
    thrown = Script("throws.js", "function handler(w) {\n  throw new TypeError('no amount');\n}")
    error, _ = await fails_in_time(sandbox, thrown)
    assert str(error) == "throws.js: TypeError: no amount (line 2)"


def test_the_worker_process_sees_none_of_the_servers_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WINDMILL_TOKEN", "wm_secret_token_value")
    asyncio.run(worker_environment_is_empty())


async def worker_environment_is_empty() -> None:
    fresh = make_sandbox()
    try:
        await fresh.transform(IDENTITY, webhook())
        [pid] = pids_of(fresh)
        assert proc(pid, "environ").read_bytes() == b""
    finally:
        await fresh.close()


async def run_on_loop(make: Callable[[], Awaitable[WebhookObject]]) -> tuple[WebhookObject, Ticker]:
    with Ticker() as ticker:
        result = await make()
        await asyncio.sleep(0.02)
    return result, ticker


@with_sandbox
async def test_builtin_templates_stay_in_process_for_real_payloads(sandbox: Sandbox) -> None:
    script = load_script("builtin:payment", pathlib.Path.cwd())
    result = await sandbox.transform(script, webhook())
    assert result.payload == QuickJSSandbox().run(script, webhook()).payload
    assert pids_of(sandbox) == [], "a built-in template on a normal payload needs no process"


@with_sandbox
async def test_a_hostile_payload_cannot_hold_the_loop_in_a_builtin(sandbox: Sandbox) -> None:
    """Dodo signs what customers typed: ~600 KB of metadata must not run the template on the event loop."""
    script = load_script("builtin:payment", pathlib.Path.cwd())
    body = samples.load("payment.succeeded")
    body["data"]["metadata"] = {f"k{i}": "\u00e9" * 200 + str(i) for i in range(2500)}
    body["data"]["customer"]["name"] = "x" * 100_000
    hostile = webhook(body)
    assert len(json.dumps(body, ensure_ascii=False)) > 600_000
    await sandbox.transform(IDENTITY, webhook())  # warm
    result, ticker = await run_on_loop(lambda: sandbox.transform(script, hostile))
    assert result.payload == QuickJSSandbox().run(script, hostile).payload
    assert len(pids_of(sandbox)) == 1, "the template ran in a sandbox process, not on the event loop"
    # What is left on the loop's thread is Python's own JSON work on the megabyte (it holds the GIL), about what
    # ingest spends parsing that body; the template's ~130 ms run no longer is.
    assert max(ticker.lateness) < 0.05, f"loop held {max(ticker.lateness) * 1000:.1f} ms"


def test_a_builtin_over_its_fast_path_budget_is_repeated_in_a_process() -> None:
    """A trusted template that spends more than the fast path's 10 ms of CPU is stopped there and run again in
    a sandbox process with the full limits: the same result, and the loop was held for ~10 ms at most."""
    slow = Script(
        "builtin:slow",
        "function handler(w) {\n  let n = 0;\n  for (let i = 0; i < 2e6; i++) n += i % 7;\n"
        "  w.payload = { n };\n  return w;\n}",
    )

    async def main() -> None:
        sandbox = ProcessPoolSandbox(workers=1)
        try:
            result = await sandbox.transform(slow, webhook())
            assert result.payload == QuickJSSandbox().run(slow, webhook()).payload == {"n": 5999995}
            assert len(sandbox.pids()) == 1, "the slow run was repeated in a sandbox process"
        finally:
            await sandbox.close()

    asyncio.run(main())
