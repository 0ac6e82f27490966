"""The sandbox pool is fair: who gets a process, under a destination whose script always overruns and a burst of
previews of an overrunning edited script. Asserted as scheduling (which run got a process, which finished
first), never as timings; bench/sandbox_fairness.py measures the latencies."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from headrace.dodo import samples
from headrace.transform import Script, TransformError, WebhookObject
from headrace.transform.fair import EDITED, PREVIEW_QUEUE, Shares
from headrace.transform.pool import ProcessPoolSandbox
from tests.helpers import wait_for

URL = "https://windmill.example/api/w/acme/jobs/run/f/f/dodo/on_payment"
SPIN = Script("spin.js", "function handler(w) { while (true) {} }")  # runs into the CPU limit every time
EDITED_SPIN = Script(EDITED, SPIN.source)
TRIVIAL = Script("innocent.js", "function handler(w) { w.payload = { ok: true }; return w }")


def webhook() -> WebhookObject:
    return WebhookObject("payment.succeeded", samples.load("payment.succeeded"), URL, webhook_id="msg_1")


class Clock:
    now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_shares_an_overrunning_script_holds_one_process_and_others_run_at_once() -> None:
    async def main() -> None:
        clock = Clock()
        shares = Shares(4, clock)
        for _ in range(3):  # before it overran: all processes but one
            await shares.acquire("bad.js")
        assert shares.held["bad.js"] == 3
        waiting = asyncio.create_task(shares.acquire("bad.js"))
        await asyncio.sleep(0)
        assert not waiting.done() and shares.free == 1
        for _ in range(3):
            shares.release("bad.js", overran=True)
        await asyncio.sleep(0)
        assert waiting.done() and shares.held["bad.js"] == 1  # one waiter got a process: now its cap is one
        more = [asyncio.create_task(shares.acquire("bad.js")) for _ in range(5)]
        await asyncio.sleep(0)
        assert not any(t.done() for t in more) and shares.free == 3
        for _ in range(3):  # other scripts get the three free processes at once
            await asyncio.wait_for(shares.acquire("good.js"), 1)
        assert shares.free == 0 and shares.held["bad.js"] == 1
        # A freed process goes to the script holding the fewest among those that may take one.
        waiting_good = asyncio.create_task(shares.acquire("other.js"))
        await asyncio.sleep(0)
        shares.release("good.js")
        await asyncio.sleep(0)
        assert waiting_good.done() and not any(t.done() for t in more)
        # After OVERRUN_MEMORY_S without an overrun its usual share comes back.
        clock.now += 31
        shares.release("bad.js")
        shares.release("good.js")
        await asyncio.sleep(0)
        assert sum(t.done() for t in more) == 2
        for task in more:
            task.cancel()
        await asyncio.gather(*more, return_exceptions=True)

    asyncio.run(main())


def test_shares_several_overrunning_scripts_hold_a_quarter_together() -> None:
    async def main() -> None:
        shares = Shares(8)
        for name in ("a.js", "b.js"):
            await shares.acquire(name)
            shares.release(name, overran=True)
        await shares.acquire("a.js")
        await shares.acquire("b.js")  # 2 = a quarter of 8
        blocked = asyncio.create_task(shares.acquire("a.js"))
        await asyncio.sleep(0)
        assert not blocked.done() and shares.free == 6
        blocked.cancel()
        await asyncio.gather(blocked, return_exceptions=True)
        assert shares.waiting("a.js") == 0

    asyncio.run(main())


def test_shares_previews_have_a_small_share_and_a_queue_limit() -> None:
    async def main() -> None:
        shares = Shares(4)
        await shares.acquire(EDITED)
        queued = [asyncio.create_task(shares.acquire(EDITED)) for _ in range(PREVIEW_QUEUE - 1)]
        await asyncio.sleep(0)
        assert shares.held[EDITED] == 1 and shares.waiting(EDITED) == PREVIEW_QUEUE - 1
        with pytest.raises(TransformError, match="previews of edited scripts are running or waiting") as caught:
            await shares.acquire(EDITED)
        assert caught.value.limit == "busy"
        for _ in range(3):
            await asyncio.wait_for(shares.acquire("dest.js"), 1)  # the rest of the pool is the destinations'
        for task in queued:
            task.cancel()
        await asyncio.gather(*queued, return_exceptions=True)

    asyncio.run(main())


def test_an_innocent_script_runs_before_any_hostile_run_ends() -> None:
    """One destination's script always overruns (12 runs queued) and six previews of an overrunning edited
    script: a trivial script of another destination gets a process at once, so it finishes before any of
    the hostile runs (each takes its whole CPU limit)."""

    async def main() -> None:
        pool = ProcessPoolSandbox(workers=4, time_limit_s=0.5)
        try:
            await asyncio.gather(*(pool.transform(Script(f"warm{i}.js", TRIVIAL.source), webhook()) for i in range(4)))
            with pytest.raises(TransformError):
                await pool.transform(SPIN, webhook())  # it has overrun once: now it is held to its small share
            finished: list[str] = []

            async def run(script: Script) -> Any:
                try:
                    result: Any = await pool.transform(script, webhook())
                except TransformError as exc:
                    result = exc
                if not (isinstance(result, TransformError) and result.limit == "busy"):  # refused: never ran
                    finished.append(script.name)
                return result

            hostile = [asyncio.create_task(run(SPIN)) for _ in range(12)]
            previews = [asyncio.create_task(run(EDITED_SPIN)) for _ in range(6)]

            async def both_attacks_hold_processes() -> bool:
                return pool.shares.held.get(SPIN.name, 0) + pool.shares.held.get(EDITED, 0) >= 2

            await wait_for(both_attacks_hold_processes, interval=0.001)
            result = await run(TRIVIAL)
            assert not isinstance(result, Exception), result
            assert finished[0] == TRIVIAL.name, finished
            answers = await asyncio.gather(*previews)
            refused = [r for r in answers if isinstance(r, TransformError) and r.limit == "busy"]
            assert len(refused) == 6 - PREVIEW_QUEUE
            await asyncio.gather(*hostile)
        finally:
            await pool.close()

    asyncio.run(main())
