"""The sandbox worker process: `python -m headrace.transform.worker_process TIME_LIMIT_S MEMORY_LIMIT_BYTES`.

Started by `transform.pool.ProcessPoolSandbox`; runs one handler at a time in `QuickJSSandbox` (a fresh QuickJS
context per run, CPU and memory limits as in-process) and answers over its stdin/stdout pipes. The parent
kills this process when a run passes the wall-clock limit, which is what bounds long native operations that
never reach QuickJS's interrupt check.

Frames in both directions: a 4-byte big-endian length, then that many bytes. A message is a JSON object frame,
sometimes followed by one raw UTF-8 frame (so a megabyte of payload is never escaped into another JSON string):
  parent -> worker  {"name": script name, "source": JavaScript}, then the handler's argument as JSON text
  worker -> parent  {"ok": true}, then JSON.stringify(handler(webhook));
                    or {"error": reason, "line": int | null, "limit": str | null}
On start the worker writes one frame {"ready": true} so the parent never charges start-up to a run's deadline.
End of input (the parent closed the pipe or died) ends the process.
"""

from __future__ import annotations

import json
import os
import struct
import sys
from typing import Any, BinaryIO

HEADER = struct.Struct(">I")
# A request carries the event body (ingest caps it, 1 MiB by default) plus the script; refuse absurd frames.
MAX_FRAME = 256 * 1024 * 1024
NICENESS = 5


def read_frame(stream: BinaryIO) -> bytes | None:
    head = stream.read(HEADER.size)
    if len(head) < HEADER.size:
        return None
    (size,) = HEADER.unpack(head)
    if size > MAX_FRAME:
        raise ValueError(f"frame of {size} bytes is over {MAX_FRAME}")
    body = stream.read(size)
    return body if len(body) == size else None


def encode_frame(value: dict[str, Any]) -> bytes:
    return raw_frame(json.dumps(value, separators=(",", ":")).encode())


def raw_frame(body: bytes) -> bytes:
    return HEADER.pack(len(body)) + body


def encode_text(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")


def decode_text(body: bytes) -> str:
    return body.decode("utf-8", "surrogatepass")


def serve(time_limit_s: float, memory_limit_bytes: int, stdin: BinaryIO, stdout: BinaryIO) -> None:
    from headrace.transform import Script, TransformError
    from headrace.transform.quickjs_sandbox import QuickJSSandbox

    sandbox = QuickJSSandbox(time_limit_s, memory_limit_bytes)
    stdout.write(encode_frame({"ready": True}))
    stdout.flush()
    while True:
        head, given = read_frame(stdin), read_frame(stdin)
        if head is None or given is None:
            return
        request = json.loads(head)
        script = Script(str(request["name"]), str(request["source"]))
        try:
            text = sandbox.evaluate_given(script, decode_text(given))
            stdout.write(encode_frame({"ok": True}) + raw_frame(encode_text(text)))
        except TransformError as exc:
            stdout.write(encode_frame({"error": exc.reason, "line": exc.line, "limit": exc.limit}))
        except Exception as exc:  # the engine or the binding failed in a way no handler should cause
            error = f"{script.name}: sandbox worker error: {type(exc).__name__}: {exc}"
            stdout.write(encode_frame({"error": error, "line": None, "limit": None}))
        stdout.flush()


def main() -> None:
    time_limit_s, memory_limit_bytes = float(sys.argv[1]), int(sys.argv[2])
    # Below the server in CPU priority: a script spinning until its deadline never slows ingest or /healthz.
    os.nice(NICENESS)
    serve(time_limit_s, memory_limit_bytes, sys.stdin.buffer, sys.stdout.buffer)


if __name__ == "__main__":
    main()
