"""Log set-up: text or JSON lines, with event and delivery ids as fields. Never given secrets to log.

Per-event lines (an accepted webhook, a delivery outcome) go through `SampledLog`: every line is
written while a kind stays under `PER_SECOND` lines a second; above that the rest of the second is
counted and written as one summary line (`N more accepted events in the last 1.0 s`, with counts by
source or destination). So a quiet deployment logs every event, and a burst of 20,000 events costs
about `PER_SECOND` lines a second plus one, not 20,000 lines.

A request id (see `headrace.http.request_id`) is carried in a context variable and added to every line
logged while that request is handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import logging
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
PER_SECOND = 20

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("headrace_request_id", default=None)


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    extras = {k: v for k, v in vars(record).items() if k not in _STANDARD}
    rid = request_id.get()
    if rid is not None and "request_id" not in extras:
        extras["request_id"] = rid
    return extras


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        data.update(_extras(record))
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, default=str)


# Control characters a terminal or a log reader would act on: C0 (line feed, carriage return, escape...), DEL, C1
# and the Unicode line and paragraph separators. In the text format each is written as an escape, so a
# message or a field (a source name from the URL, a signed event type) can never start a line of its own.
_ESCAPES = {
    **{c: repr(chr(c))[1:-1] for c in (*range(0x20), 0x7F)},
    **{c: f"\\x{c:02x}" for c in range(0x80, 0xA0)},
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def escape(text: str) -> str:
    """`text` on one line: control characters as escapes (\\n, \\r, \\x1b, \\u2028...)."""
    return text.translate(_ESCAPES)


class TextFormatter(logging.Formatter):
    """`time LEVEL logger: message key=value ...` on one line, control characters escaped; a traceback follows
    on lines of its own, each indented (and escaped), so none of them can pass for a record."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = f"{self.formatTime(record)} {record.levelname:<7} {record.name}: {escape(record.getMessage())}"
        extras = _extras(record)
        if extras:
            line += " " + " ".join(f"{escape(str(k))}={escape(str(v))}" for k, v in extras.items())
        details = []
        if record.exc_info:
            details.append(self.formatException(record.exc_info))
        if record.stack_info:
            details.append(self.formatStack(record.stack_info))
        for text in details:
            line += "".join(f"\n    {escape(part)}" for part in text.split("\n"))
        return line


def setup(fmt: str = "text", level: str = "info") -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)


class SampledLog:
    """One kind of per-event line: written one by one up to `per_second`, then summarised each second."""

    def __init__(
        self,
        logger: logging.Logger,
        kind: str,
        group: str,
        per_second: int = PER_SECOND,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger, self.kind, self.group = logger, kind, group
        self.per_second = per_second
        self.clock = clock
        self._window = -1e9
        self._written = 0
        self._held: Counter[str] = Counter()
        self._level = logging.INFO
        self._flush_due = False

    def log(self, level: int, message: str, *args: object, extra: dict[str, Any]) -> None:
        if not self.logger.isEnabledFor(level):
            return
        now = self.clock()
        if now - self._window >= 1.0:
            self.flush()
            self._window, self._written = now, 0
        if self._written < self.per_second:
            self._written += 1
            self.logger.log(level, message, *args, extra=extra)
            return
        self._held[str(extra.get(self.group, ""))] += 1
        self._level = max(self._level, level)
        if not self._flush_due:
            self._flush_due = True
            # Without a running loop, the next line written after this second flushes instead.
            with contextlib.suppress(RuntimeError):
                asyncio.get_running_loop().call_later(max(0.0, self._window + 1.0 - now), self.flush)

    def flush(self) -> None:
        """Write the summary of the lines held back in the current second, if any."""
        self._flush_due = False
        if not self._held:
            return
        held, self._held = self._held, Counter()
        level, self._level = self._level, logging.INFO
        self.logger.log(
            level,
            "%d more %s in the last %.1f s (above %d lines a second they are counted, not logged one by one)",
            sum(held.values()),
            self.kind,
            max(0.0, min(1.0, self.clock() - self._window)),
            self.per_second,
            extra={f"by_{self.group}": dict(held)},
        )


RECEIVED = SampledLog(logging.getLogger("headrace.ingest"), "webhooks received", "source")
OUTCOMES = SampledLog(logging.getLogger("headrace.deliver"), "delivery outcomes", "destination")


def webhook_received(outcome: str, source: str, event_id: int, webhook_id: str, event_type: str, routed: int) -> None:
    """The ingest line: one per accepted (or duplicate) webhook, sampled above PER_SECOND a second."""
    RECEIVED.log(
        logging.INFO,
        "webhook %s",
        outcome,
        extra={
            "source": source,
            "event_id": event_id,
            "webhook_id": webhook_id,
            "event_type": event_type,
            "deliveries": routed,
        },
    )


def delivery_outcome(fields: dict[str, Any], reason: str | None = None) -> None:
    """The worker's line for a recorded attempt outcome (`fields` as the worker builds them: event_id,
    delivery_id, destination, webhook_id, job_id, outcome). Delivered and cancelled log at info, retry
    and failed at warning with their reason; all sampled above PER_SECOND lines a second."""
    if reason is None:
        OUTCOMES.log(logging.INFO, "delivery %s", fields.get("outcome"), extra=fields)
    else:
        OUTCOMES.log(logging.WARNING, "delivery %s: %s", fields.get("outcome"), reason, extra=fields)
