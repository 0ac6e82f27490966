"""ProcessPoolSandbox: user scripts run in a small pool of worker processes, each run under a wall-clock deadline.

Why processes: QuickJS checks its CPU-time interrupt only between operations, so one long native operation
(`String(10n ** 300000n)`, `"…".normalize("NFKC")` on megabytes) runs far past the limit, and in-process it
holds the event loop (ingest, `/healthz`, every other delivery) for all that time. Here a user script runs in a
worker process (`worker_process.py`: the same `QuickJSSandbox`, CPU and memory limits as before); the event
loop only awaits. A run that has not answered by the wall-clock limit gets its process killed (SIGKILL) and
reaped, and fails with a `TransformError` naming the limit; the next run gets a new process. A worker that
dies (crash, OOM killer, `kill`) fails the run it had, the same way.

The built-in templates (headrace's own, trusted code) keep the in-process fast path: their kept, frozen
context on the calling thread, but only for inputs up to `fast_path_max_bytes` and within `fast_path_cpu_s`
of CPU, so that even a hostile payload (a huge string or metadata object; Dodo signs what a customer typed)
cannot hold the loop for more than a few milliseconds (the engine's JSON parse and stringify are native and
not interruptible, but linear: ~2.5 ms at 64 KiB). A larger input, or a run that overspends that budget,
goes to the pool with the full limits.

Fairness (`fair.Shares`): a run first gets a process from the pool's shares: one script (in practice one
destination's) at most all processes but one; scripts that recently ran into a limit, together, and previews
of edited scripts, together, a quarter each (at least one), with at most four previews running or waiting;
a freed process goes to the waiting script holding the fewest. So a destination whose script always overruns,
or a burst of previews of one, leaves the other destinations' scripts processes to run on at once. A process
killed on overrun is replaced in the background, so the next run finds a warm one.

Threads: each run in the pool is one blocking call (write the request, poll for the answer until the deadline)
on the pool's own executor, one thread per worker process, so a hung script never takes a thread that the
event loop's default executor (DNS look-ups) needs, and the pool works under any event loop (asyncio.run in
the CLI, uvloop in the server). Runs wait for their share on the loop; that wait is not charged to their
deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pathlib
import queue
import select
import subprocess
import sys
import threading
import time
import weakref
from concurrent.futures import Future, ThreadPoolExecutor
from typing import IO, Any

from headrace.transform import Script, TransformError, WebhookObject
from headrace.transform.fair import Shares
from headrace.transform.quickjs_sandbox import QuickJSSandbox, encode_input, to_webhook
from headrace.transform.worker_process import HEADER, MAX_FRAME, decode_text, encode_frame, encode_text, raw_frame

# A new worker process must say it is ready within this long (Python start-up and `import quickjs`, ~60 ms).
START_TIMEOUT_S = 10.0
# Built-in templates run in-process only for inputs up to this size (JSON text of the handler's argument)...
FAST_PATH_MAX_BYTES = 64 * 1024
# ... and within this much CPU; past it the run is repeated in the pool with the full limits.
FAST_PATH_CPU_S = 0.010


_CLOCK_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
OVERRUN_LIMITS = ("cpu", "memory", "wall", "process")  # a run that hit one of these marks its script overrunning


def _on_loop(loop: asyncio.AbstractEventLoop, call: Any, *args: Any) -> None:
    """`call(*args)` on `loop` from a pool thread; nothing when the loop has closed meanwhile."""
    with contextlib.suppress(RuntimeError):
        loop.call_soon_threadsafe(call, *args)


class _Died(Exception):
    pass


class _Overran(Exception):
    pass


class _Worker:
    """One worker process and its two pipes. Used by one executor thread at a time."""

    def __init__(self, time_limit_s: float, memory_limit_bytes: int) -> None:
        bootstrap = (
            f"import sys; sys.path[:0] = {[p for p in sys.path if p]!r}; "
            "from headrace.transform.worker_process import main; main()"
        )
        # -I and an empty environment: the worker sees none of the server's environment (tokens, secrets);
        # it finds headrace through the parent's sys.path, given in the bootstrap line.
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-c", bootstrap, repr(time_limit_s), str(memory_limit_bytes)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            env={},
            close_fds=True,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._stdin: IO[bytes] = self.process.stdin
        self._stdout = self.process.stdout.fileno()
        self._poll = select.poll()  # not select.select: a busy server's descriptors may pass FD_SETSIZE
        self._poll.register(self._stdout, select.POLLIN)
        try:
            ready = self._read(time.monotonic() + START_TIMEOUT_S)
        except (_Died, _Overran):
            self.kill()
            raise TransformError(
                f"the sandbox worker process did not start ({self.describe_exit()}); "
                f"check that `{sys.executable} -c 'import quickjs'` works"
            ) from None
        if ready != {"ready": True}:
            self.kill()
            raise TransformError(f"the sandbox worker process sent {ready!r} instead of its ready signal")

    @property
    def pid(self) -> int:
        return self.process.pid

    def call(self, request: bytes, wall_limit_s: float) -> tuple[dict[str, Any], str | None]:
        """Send one request; the answer's head and, when it succeeded, the handler's JSON text."""
        deadline = time.monotonic() + wall_limit_s
        try:
            self._stdin.write(request)
            self._stdin.flush()
        except (BrokenPipeError, ValueError):
            raise _Died from None
        head = self._read(deadline)
        if head.get("ok") is True:
            return head, decode_text(self._read_frame(deadline))
        return head, None

    def _read(self, deadline: float) -> dict[str, Any]:
        value = json.loads(self._read_frame(deadline))
        if not isinstance(value, dict):
            raise _Died
        return value

    def _read_frame(self, deadline: float) -> bytes:
        (size,) = HEADER.unpack(self._read_exactly(HEADER.size, deadline))
        if size > MAX_FRAME:
            raise _Died
        return self._read_exactly(size, deadline)

    def _read_exactly(self, size: int, deadline: float) -> bytes:
        chunks: list[bytes] = []
        remaining = size
        while remaining:
            timeout_ms = (deadline - time.monotonic()) * 1000
            if timeout_ms <= 0 or not self._poll.poll(max(1, int(timeout_ms) + 1)):
                if time.monotonic() >= deadline:
                    raise _Overran
                continue
            chunk = os.read(self._stdout, min(remaining, 1 << 20))
            if not chunk:
                raise _Died
            chunks.append(chunk)
            remaining -= len(chunk)
        return b"".join(chunks)

    def cpu_ms(self) -> int | None:
        """CPU time (user + system) the process has used, from /proc; None where there is no /proc."""
        try:
            fields = pathlib.Path(f"/proc/{self.pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            return None
        return round((int(fields[11]) + int(fields[12])) * 1000 / _CLOCK_TICKS)

    def kill(self) -> None:
        """SIGKILL and reap: no zombie is left behind."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait()
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()

    def describe_exit(self) -> str:
        try:
            code = self.process.wait(timeout=1.0)
        except subprocess.TimeoutExpired:
            return "it stopped answering"
        if code < 0:
            return f"killed by signal {-code}"
        return f"exit status {code}"


def _kill_all(live: set[_Worker], lock: threading.Lock) -> None:
    with lock:
        workers = list(live)
        live.clear()
    for worker in workers:
        worker.kill()


class ProcessPoolSandbox:
    """The server's sandbox: user scripts in worker processes with a wall-clock deadline; built-ins in-process.

    `workers` is the pool size (runs at once). The CPU limit (`time_limit_s`) and memory limit apply inside each
    run as in `QuickJSSandbox`; `wall_limit_s` (default twice the CPU limit) is when the parent kills the process.
    """

    def __init__(
        self,
        workers: int = 4,
        time_limit_s: float = 0.2,
        memory_limit_bytes: int = 64 * 1024 * 1024,
        wall_limit_s: float | None = None,
        fast_path_max_bytes: int = FAST_PATH_MAX_BYTES,
        fast_path_cpu_s: float = FAST_PATH_CPU_S,
    ) -> None:
        if workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        QuickJSSandbox(time_limit_s, memory_limit_bytes)  # refuses limits that make no sense
        self.workers = workers
        self.time_limit_s = time_limit_s
        self.memory_limit_bytes = memory_limit_bytes
        self.wall_limit_s = wall_limit_s if wall_limit_s is not None else 2 * time_limit_s
        if self.wall_limit_s < time_limit_s:
            raise ValueError(f"wall_limit_s ({self.wall_limit_s}) must be at least time_limit_s ({time_limit_s})")
        self.fast_path_max_bytes = fast_path_max_bytes
        self.fast = QuickJSSandbox(fast_path_cpu_s, memory_limit_bytes)
        self._executor = ThreadPoolExecutor(workers, thread_name_prefix="headrace-sandbox")
        self._spawner = ThreadPoolExecutor(1, thread_name_prefix="headrace-sandbox-start")
        self._idle: queue.LifoQueue[_Worker | None] = queue.LifoQueue()  # a warm process first
        for _ in range(workers):
            self._idle.put(None)  # a slot; its process starts on first use
        self._live: set[_Worker] = set()
        self._lock = threading.Lock()
        self._closed = False
        self.shares = Shares(workers)
        # If the owner never calls close(), the processes are still killed and reaped (at the latest at exit).
        self._finalizer = weakref.finalize(self, _kill_all, self._live, self._lock)

    def pids(self) -> list[int]:
        """Process ids of the live worker processes (for tests and diagnostics)."""
        with self._lock:
            return sorted(worker.pid for worker in self._live)

    async def transform(self, script: Script, webhook: WebhookObject) -> WebhookObject:
        if self._closed:
            raise TransformError(f"{script.name}: the sandbox is shut down (headrace is stopping); not run")
        given = None
        if script.name.startswith("builtin:"):
            # Encoding on the loop costs ~10 µs for a Dodo event, ~5 ms at the 1 MiB body limit.
            given = encode_input(script.name, webhook)
            if len(given) <= self.fast_path_max_bytes:
                try:
                    return to_webhook(script.name, webhook, self.fast.evaluate_given(script, given))
                except TransformError as exc:
                    if exc.limit != "cpu":
                        raise
                    # Over the fast path's small budget: repeat with the full limits, off the event loop.
        loop = asyncio.get_running_loop()
        name = script.name
        await self.shares.acquire(name)  # who gets a process: fair.Shares
        try:
            done = self._executor.submit(self._run, script, webhook, given)
        except BaseException:
            self.shares.release(name)
            raise
        # The process is given back when the run ends in its thread, even if this await is cancelled first.
        done.add_done_callback(lambda finished: _on_loop(loop, self._release, name, finished))
        return await asyncio.wrap_future(done)

    def _release(self, name: str, finished: Future[WebhookObject]) -> None:
        error = None if finished.cancelled() else finished.exception()
        overran = isinstance(error, TransformError) and error.limit in OVERRUN_LIMITS
        self.shares.release(name, overran=overran)

    def _run(self, script: Script, webhook: WebhookObject, given: str | None) -> WebhookObject:
        """In a pool thread: encode, run in a worker process, decode and check (JSON work stays off the loop)."""
        text = self._evaluate(script, encode_input(script.name, webhook) if given is None else given)
        return to_webhook(script.name, webhook, text)

    def _evaluate(self, script: Script, given: str) -> str:
        name = script.name
        request = encode_frame({"name": name, "source": script.source}) + raw_frame(encode_text(given))
        # One slot per executor thread, so this waits only while a killed process's replacement is starting.
        worker = self._idle.get()
        replace = False
        try:
            if self._closed:
                raise TransformError(f"{name}: the sandbox is shut down (headrace is stopping); not run")
            if worker is None:
                worker = _Worker(self.time_limit_s, self.memory_limit_bytes)
                with self._lock:
                    self._live.add(worker)
            try:
                answer, text = worker.call(request, self.wall_limit_s)
            except _Overran:
                used = worker.cpu_ms()
                self._discard(worker)
                worker, replace = None, True
                ms = round(self.wall_limit_s * 1000)
                if used is not None and used < self.time_limit_s * 1000 / 2:
                    why = f"it got only {used} ms of CPU in that time: the machine is overloaded"
                else:
                    why = (
                        "a long native operation, such as converting a huge BigInt to a string or normalising "
                        "megabytes of text, does not stop at the CPU limit"
                    )
                raise TransformError(
                    f"{name}: handler exceeded the wall-clock limit of {ms} ms and its sandbox process was "
                    f"stopped ({why})",
                    limit="wall",
                ) from None
            except _Died:
                how = worker.describe_exit()
                self._discard(worker)
                worker, replace = None, True
                raise TransformError(
                    f"{name}: the sandbox process running the handler died ({how}); the next run gets a new one",
                    limit="process",
                ) from None
        finally:
            if replace and not self._closed:
                self._spawner.submit(self._respawn)  # the slot comes back with a warm process, off this run's path
            else:
                self._idle.put(worker)
        if text is not None:
            return text
        line = answer.get("line")
        raise TransformError(
            str(answer.get("error", f"{name}: the sandbox process gave no result")),
            line if isinstance(line, int) else None,
            limit=answer.get("limit") if isinstance(answer.get("limit"), str) else None,
        )

    def _respawn(self) -> None:
        worker = None
        try:
            if not self._closed:
                worker = _Worker(self.time_limit_s, self.memory_limit_bytes)
                with self._lock:
                    self._live.add(worker)
        except TransformError:
            worker = None  # the next run tries again, and reports why it cannot start
        finally:
            self._idle.put(worker)

    def _discard(self, worker: _Worker) -> None:
        with self._lock:
            self._live.discard(worker)
        worker.kill()

    def shutdown(self) -> None:
        """Wait for runs in progress (each ends within the wall-clock limit), then kill and reap every process."""
        self._closed = True
        self._executor.shutdown(wait=True)
        self._spawner.shutdown(wait=True)
        self._finalizer()

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(None, self.shutdown)
