"""The one module that embeds a JavaScript engine: QuickJS via the `quickjs-ng` wheel.

Every run of a user's script gets a brand-new QuickJS runtime and context, which is thrown away afterwards
(headrace's own built-in templates run in a kept context that is frozen after the template is defined; see
`_run_builtin`). That is the isolation: nothing a handler does (globals, `Object.prototype.x = 1`, replacing
`Array.prototype.map`, top-level `let` state, `Symbol.for` entries, RegExp statics) can reach the next run,
because the next run starts from a fresh set of intrinsics. Creating and freeing a context costs about 80 µs;
a whole run of a payment reshape on the 2.7 KB payment.succeeded body about 165-180 µs, against about 45 µs in
a reused (unisolated) context (`python bench/transform.py`; docs/transformations.md has the breakdown).
QuickJS cannot share compiled bytecode between runtimes and the binding exposes no bytecode serialisation, so
there is no compiled-script cache: compiling a handler is part of each run (~15-20 µs).

This class runs a handler on the calling thread and cannot stop a long native operation (its CPU limit is
checked between operations only); the server runs user scripts through `pool.ProcessPoolSandbox`, which
uses this class inside sandbox worker processes under a wall-clock deadline.

Data crosses the boundary only as JSON text: the input is parsed inside the engine (`JSON.parse`
semantics) and the handler's return value is serialised inside the engine (`JSON.stringify` semantics:
`undefined` keys vanish, Dates become ISO strings, `toJSON` is honoured), then parsed by Python.

Thread safety: `QuickJSSandbox` holds no engine state between calls; each `run` creates, uses and frees
its context on the calling thread (a QuickJS runtime must never be touched by two threads), so one instance
may be shared by any number of threads without a lock. The CPU limit is measured with C `clock()`, which
is process CPU time: other busy threads in the process use up a running handler's budget faster.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from typing import Any
from urllib.parse import urlsplit

import quickjs

from headrace.transform import Script, TransformError, WebhookObject
from headrace.transform.intl import INTL_SHIM, NEEDS_SHIM
from headrace.windmill.references import Reference

METHODS = ("POST", "PUT")

# Evaluated before the user's script; the value is the original JSON.stringify, kept for the result.
_PRELUDE = "JSON.stringify"
# `console` is not ECMAScript, but pasted handlers often log while debugging. Defined (doing nothing:
# nothing may call out of the engine while a time limit is set) only for scripts that mention it.
_PRELUDE_WITH_CONSOLE = """{ const ignore = function () {};
  globalThis.console = { log: ignore, info: ignore, warn: ignore, error: ignore, debug: ignore, trace: ignore };
}
JSON.stringify"""


# `windmill.reference(text)`: the one way a script sends a Windmill reference on purpose (every other output
# string Windmill would resolve is guarded after the run: windmill/references.py). Defined only for scripts
# that mention `windmill`; the run's secret mark is put in front of the text and taken off after the run.
_WINDMILL = """{ const mark = %s;
  const shape = /^\\$(?:(?:var|jsonvar|res|encrypted):[^\\s]+|[A-Za-z_][A-Za-z0-9_]*)$/;
  const reference = function windmill_reference(text) {
    if (typeof text !== "string" || !shape.test(text)) {
      throw new TypeError("windmill.reference: give a reference such as \\"$res:f/dodo/db\\", \\"$var:f/dodo/key\\" or "
        + "\\"$WM_WORKSPACE\\", got " + (typeof text === "string" ? JSON.stringify(text.slice(0, 60)) : typeof text));
    }
    return mark + text;
  };
  globalThis.windmill = Object.freeze({ reference });
}
"""


def _prelude(source: str, mark: str) -> str:
    """What runs before a user script: the locale shim, `console` and `windmill` only for scripts that mention
    them."""
    prelude = _PRELUDE_WITH_CONSOLE if "console" in source else _PRELUDE
    if "windmill" in source:
        prelude = _WINDMILL % json.dumps(mark) + prelude
    return INTL_SHIM + "\n" + prelude if NEEDS_SHIM.search(source) else prelude


# Evaluated after the user's script: hands back the handler, or a description of what `handler` is.
_FIND_HANDLER = '\n;typeof handler === "function" ? handler : typeof handler'
# Freezes every object reachable from the global object, and the global object itself.
_FREEZE = """(() => {
  const seen = new Set();
  const freeze = (value) => {
    if ((typeof value !== "object" && typeof value !== "function") || value === null || seen.has(value)) return;
    seen.add(value);
    for (const key of Reflect.ownKeys(value)) {
      const slot = Object.getOwnPropertyDescriptor(value, key);
      if (slot && "value" in slot) freeze(slot.value);
      if (slot && slot.get) freeze(slot.get);
      if (slot && slot.set) freeze(slot.set);
    }
    freeze(Object.getPrototypeOf(value));
    Object.freeze(value);
  };
  freeze(globalThis);
})();"""
# QuickJS names code passed to eval "<input>"; stack frames and syntax errors point into it.
_ENCODE = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False).encode
# Only for text with lone surrogates (legal in JSON escapes, not encodable as UTF-8): \u-escape everything.
_ENCODE_ASCII = json.JSONEncoder(allow_nan=False, separators=(",", ":")).encode
_LOCATION = re.compile(r"<input>:(\d+)(?::\d+)?")
_ERROR_NAME = re.compile(r"^[A-Za-z]*Error\b")
# RFC 9110 token for header names; values: visible ASCII/obs-text, space and tab, no CR/LF/NUL.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_HEADER_VALUE = re.compile(r"[\t\x20-\x7e\x80-\xff]*")


class QuickJSSandbox:
    """Runs `handler(webhook)` with a CPU-time limit and a memory limit, in a fresh QuickJS context."""

    def __init__(self, time_limit_s: float = 0.2, memory_limit_bytes: int = 64 * 1024 * 1024) -> None:
        if time_limit_s <= 0:
            raise ValueError(f"time_limit_s must be positive, got {time_limit_s}")
        if memory_limit_bytes < 1024 * 1024:
            raise ValueError(f"memory_limit_bytes must be at least 1 MiB, got {memory_limit_bytes}")
        self.time_limit_s = time_limit_s
        self.memory_limit_bytes = memory_limit_bytes
        self._trusted = threading.local()  # built-in templates: one frozen context per thread and template

    def run(self, script: Script, webhook: WebhookObject) -> WebhookObject:
        """Transform `webhook` with `script`; raise TransformError saying why if that fails."""
        text = self.evaluate(script, webhook)
        return to_webhook(script.name, webhook, text)

    async def transform(self, script: Script, webhook: WebhookObject) -> WebhookObject:
        """The `Sandbox` protocol, in-process on the caller's thread: for tests and tools only. A long native
        operation is not stopped by the CPU limit here; the server uses `pool.ProcessPoolSandbox`."""
        return self.run(script, webhook)

    async def close(self) -> None:
        """Nothing to release: every run frees its own context."""

    def evaluate(self, script: Script, webhook: WebhookObject) -> str:
        """Run the handler and return `JSON.stringify(handler(webhook))` exactly as the engine produced it.

        This is what `run` validates; it is public so that tests can compare it byte for byte with Node.
        """
        return self.evaluate_given(script, encode_input(script.name, webhook))

    def evaluate_given(self, script: Script, given: str) -> str:
        """`evaluate` for an input already encoded by `encode_input` (what a sandbox worker process receives)."""
        name = script.name
        mark, _, given = given.partition("\n")  # encode_input: the run's reference mark, then the argument
        if name.startswith("builtin:"):
            return self._run_builtin(script, given)
        context = quickjs.Context()
        context.set_memory_limit(self.memory_limit_bytes)
        deadline = time.process_time() + self.time_limit_s
        try:
            # Taken before user code runs, so a script that replaces JSON.stringify cannot change the output.
            # Calling it (rather than the binding's Object.json()) keeps `toJSON` and getters under the
            # time limit: Object.json() runs outside it, and `toJSON() { for (;;) {} }` would never return.
            stringify = context.eval(_prelude(script.source, mark))
            self._limit_time(context, deadline)
            # One eval: the user's script, then (on a line of its own, so line numbers are untouched)
            # an expression whose value is the handler function, or what `handler` is instead.
            handler = context.eval(script.source + _FIND_HANDLER)
            if not isinstance(handler, quickjs.Object):
                raise TransformError(
                    f"{name}: the script must define `function handler(webhook) {{ ... }}`; `handler` is {handler}"
                )
            argument = context.parse_json(given)
            self._limit_time(context, deadline)
            result = handler(argument)
        except quickjs.JSException as exc:  # StackOverflow is a subclass
            raise self._error(name, str(exc)) from None
        except TypeError as exc:  # the binding cannot convert the return value, e.g. a BigInt
            raise TransformError(f"{name}: handler returned a value that is not JSON ({exc})") from None
        if not isinstance(result, quickjs.Object):
            raise TransformError(f"{name}: {_describe_non_object(result)}")
        try:
            self._limit_time(context, deadline)
            text = stringify(result)
        except quickjs.JSException as exc:
            error = self._error(name, str(exc), during="JSON.stringify of the returned object")
            raise error from None
        if not isinstance(text, str):  # JSON.stringify gave undefined: a function or a symbol
            raise TransformError(f"{name}: handler returned a function or symbol, not the webhook object")
        return text

    def _run_builtin(self, script: Script, given: str) -> str:
        """headrace's own templates run in a context kept per thread and template, with every intrinsic and
        the global object frozen after the template is defined: a run cannot leave anything behind for the
        next (a write to a frozen object is ignored or throws), and the ~160 µs of a fresh context and
        compile is paid once. User scripts never take this path: freezing would change their semantics."""
        cache: dict[str, tuple[Any, Any, Any]] = self._trusted.__dict__.setdefault("contexts", {})
        entry = cache.get(script.source)
        if entry is None:
            context = quickjs.Context()
            context.set_memory_limit(self.memory_limit_bytes)
            stringify = context.eval(_PRELUDE)
            handler = context.eval(script.source + _FIND_HANDLER)
            context.eval(_FREEZE)
            entry = cache[script.source] = (context, stringify, handler)
        context, stringify, handler = entry
        deadline = time.process_time() + self.time_limit_s
        try:
            self._limit_time(context, deadline)
            result = handler(context.parse_json(given))
            if not isinstance(result, quickjs.Object):
                raise TransformError(f"{script.name}: {_describe_non_object(result)}")
            text = stringify(result)
        except quickjs.JSException as exc:
            cache.pop(script.source, None)  # after an engine error, start the next run from a new context
            raise self._error(script.name, str(exc)) from None
        if not isinstance(text, str):
            raise TransformError(f"{script.name}: handler returned a function or symbol, not the webhook object")
        return text

    def _limit_time(self, context: Any, deadline: float) -> None:
        # QuickJS restarts its clock() at every entry into the engine, so give each step what is left.
        context.set_time_limit(max(deadline - time.process_time(), 0.001))

    def _error(self, name: str, raw: str, during: str = "") -> TransformError:
        lines = raw.strip().splitlines() or ["exception"]
        message = lines[0]
        # A throw inside the prelude's helper points at the prelude: the line that matters is its caller's.
        match = _LOCATION.search("\n".join(line for line in lines if "at windmill_reference " not in line))
        line = int(match.group(1)) if match else None
        if message == "InternalError: interrupted":
            ms = round(self.time_limit_s * 1000)
            return TransformError(f"{name}: handler exceeded the CPU time limit of {ms} ms", line, limit="cpu")
        mib = self.memory_limit_bytes / (1024 * 1024)
        if message == "InternalError: out of memory":
            return TransformError(f"{name}: handler exceeded the memory limit of {mib:g} MiB", line, limit="memory")
        if raw.strip() == "null":
            # When QuickJS runs out of memory so completely that it cannot even build the InternalError,
            # the pending exception is null, which looks exactly like `throw null`.
            return TransformError(
                f"{name}: handler exceeded the memory limit of {mib:g} MiB (or threw null)", limit="memory"
            )
        if not _ERROR_NAME.match(message):
            message = f"uncaught exception: {message}"
        if during:
            message = f"{message} (during {during})"
        return TransformError(f"{name}: {message}", line)


def encode_input(name: str, webhook: WebhookObject) -> str:
    """What `evaluate_given` takes: the run's reference mark, a newline, then the handler's argument as JSON
    text (which has no raw newline); or TransformError when the webhook cannot be JSON."""
    try:
        text = _ENCODE(handler_input(webhook))
    except (TypeError, ValueError) as exc:
        raise TransformError(f"{name}: the webhook is not JSON-serialisable: {exc}") from None
    except RecursionError:
        raise TransformError(f"{name}: the webhook is nested too deeply to pass to the handler") from None
    try:
        text.encode()
    except UnicodeEncodeError:
        text = _ENCODE_ASCII(handler_input(webhook))
    return f"{webhook.reference_mark}\n{text}"


def handler_input(webhook: WebhookObject) -> dict[str, Any]:
    """The object `handler` receives: Svix's shape plus headrace's read-only `webhookId` and `origin`.

    `cancel` is not passed in; the handler sets it to drop the delivery.
    """
    return {
        "eventType": webhook.event_type,
        "webhookId": webhook.webhook_id,
        "origin": webhook.origin,
        "payload": webhook.payload,
        "url": webhook.url,
        "method": webhook.method,
        "headers": dict(webhook.headers),
    }


def _describe_non_object(value: object) -> str:
    if value is None:
        what = "undefined or null"
    elif isinstance(value, bool):
        what = f"the boolean {'true' if value else 'false'}"
    elif isinstance(value, (int, float)):
        what = f"the number {value}"
    else:
        what = f"the string {str(value)[:40]!r}"
    return f"handler returned {what}; it must return the webhook object (did you forget `return webhook`?)"


def to_webhook(name: str, original: WebhookObject, text: str) -> WebhookObject:
    """Check the handler's JSON result against the Svix contract and build the outgoing webhook.

    `eventType` (and `webhookId`, `origin`) are read-only, as in Svix: whatever the handler leaves in them is ignored.
    """
    try:
        result = json.loads(text)
    except RecursionError:
        raise TransformError(f"{name}: handler returned an object nested too deeply to deliver") from None
    if not isinstance(result, dict):
        raise TransformError(
            f"{name}: handler returned a JSON {type(result).__name__ if result is not None else 'null'}; "
            "it must return the webhook object"
        )
    missing = [key for key in ("payload", "url", "method") if key not in result]
    if missing:
        raise TransformError(
            f"{name}: the object returned by handler has no {', '.join(missing)} "
            "(return the webhook you were given, or a copy of it; async handlers are not supported)"
        )
    url = result["url"]
    if url != original.url and not _is_http_url(url):
        raise TransformError(f"{name}: webhook.url must be an absolute http(s) URL, got {url!r}")
    method = result["method"]
    if method not in METHODS:
        raise TransformError(f'{name}: webhook.method must be "POST" or "PUT", got {method!r}')
    headers = result.get("headers", {})
    if not isinstance(headers, dict):
        raise TransformError(f"{name}: webhook.headers must be an object of strings, got {headers!r}")
    for key, value in headers.items():
        if not _HEADER_NAME.fullmatch(key):
            raise TransformError(f"{name}: webhook.headers has an invalid header name {key!r}")
        if not isinstance(value, str) or not _HEADER_VALUE.fullmatch(value):
            raise TransformError(
                f"{name}: webhook.headers[{key!r}] must be a string without line breaks, got {value!r}"
            )
    cancel = result.get("cancel", False)
    if not isinstance(cancel, bool):
        raise TransformError(f"{name}: webhook.cancel must be true or false, got {cancel!r}")
    payload = result["payload"]
    if original.reference_mark and original.reference_mark in text:
        payload = _references(payload, original.reference_mark)
    return dataclasses.replace(
        original,
        payload=payload,
        url=url,
        method=method,
        headers=headers,
        cancel=cancel,
    )


def _references(value: Any, mark: str) -> Any:
    """The payload with each string `windmill.reference` made (it starts with the run's mark) as a Reference,
    and the mark taken out of every other string and key (a reference concatenated into text is just text)."""
    if isinstance(value, str):
        if value.startswith(mark):
            return Reference(value[len(mark) :].replace(mark, ""))
        return value.replace(mark, "")
    if isinstance(value, dict):
        return {key.replace(mark, ""): _references(item, mark) for key, item in value.items()}
    if isinstance(value, list):
        return [_references(item, mark) for item in value]
    return value


def _is_http_url(value: object) -> bool:
    if not isinstance(value, str):
        return False
    try:
        parts = urlsplit(value)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)
