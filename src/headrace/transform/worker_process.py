"""The sandbox worker process: `python -m headrace.transform.worker_process TIME_LIMIT_S MEMORY_LIMIT_BYTES`.

Started by `transform.pool.ProcessPoolSandbox`; runs one handler at a time in `QuickJSSandbox` (a fresh QuickJS
context per run, CPU and memory limits as in-process) and answers over its stdin/stdout pipes. The parent
kills this process when a run passes the wall-clock limit, which is what bounds long native operations that
never reach QuickJS's interrupt check.

Frames in both directions: a 4-byte big-endian length, then that many bytes of UTF-8 JSON.
  parent -> worker  {"name": script name, "source": JavaScript, "given": handler argument as JSON text}
  worker -> parent  {"text": JSON.stringify(handler(webhook))} or {"error": reason, "line": int | null}
On start the worker writes one frame {"ready": true} so the parent never charges start-up to a run's deadline.
End of input (the parent closed the pipe or died) ends the process.
"""

from __future__ import annotations

import json
import struct
import sys
from typing import Any, BinaryIO

HEADER = struct.Struct(">I")
# A request carries the event body (ingest caps it, 1 MiB by default) plus the script; refuse absurd frames.
MAX_FRAME = 256 * 1024 * 1024


def read_frame(stream: BinaryIO) -> dict[str, Any] | None:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes is over {MAX_FRAME}")
    body = stream.read(size)
    if len(body) < size:
        return None
    value = json.loads(body)
    if not isinstance(value, dict):
        raise ValueError("frame is not a JSON object")
    return value


def encode_frame(value: dict[str, Any]) -> bytes:
    body = json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()
    return HEADER.pack(len(body)) + body


def serve(time_limit_s: float, memory_limit_bytes: int, stdin: BinaryIO, stdout: BinaryIO) -> None:
    from headrace.transform import Script, TransformError
    from headrace.transform.quickjs_sandbox import QuickJSSandbox

    sandbox = QuickJSSandbox(time_limit_s, memory_limit_bytes)
    stdout.write(encode_frame({"ready": True}))
    stdout.flush()
    while True:
        request = read_frame(stdin)
        if request is None:
            return
        script = Script(str(request["name"]), str(request["source"]))
        answer: dict[str, Any]
        try:
            answer = {"text": sandbox.evaluate_given(script, str(request["given"]))}
        except TransformError as exc:
            answer = {"error": exc.reason, "line": exc.line, "limit": exc.limit}
        except Exception as exc:  # the engine or the binding failed in a way no handler should cause
            answer = {"error": f"{script.name}: sandbox worker error: {type(exc).__name__}: {exc}", "line": None}
        stdout.write(encode_frame(answer))
        stdout.flush()


def main() -> None:
    time_limit_s, memory_limit_bytes = float(sys.argv[1]), int(sys.argv[2])
    serve(time_limit_s, memory_limit_bytes, sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
