"""POST /webhooks/{source}: verify, bound, parse, route, store durably, then answer.

Answers (DESIGN contract): 202 accepted, 200 duplicate (stored once), 400 missing/malformed webhook
headers or a body that is not a strict JSON object, 401 bad signature or timestamp out of tolerance, 404
unknown source, 408 body not received within `body_timeout`, 413 body over the limit, 503 (JSON, with
Retry-After) when the store cannot take the event (disk full, database gone): nothing was stored and the
sender retries. A refusal stores no body, only a counted rejection record.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable

import aiohttp
from aiohttp import web

from headrace.config import Settings
from headrace.config.secret import decode_secret
from headrace.dodo.keys import body_key, body_time
from headrace.dodo.signature import SignatureError, verify
from headrace.durations import parse_duration
from headrace.ingest.body import BodyError, parse_object
from headrace.ingest.refusals import UNKNOWN, RefusalSampler
from headrace.models import NewEvent, Rejection, Route
from headrace.observe import logs
from headrace.observe.metrics import Metrics
from headrace.store.base import EventLog

log = logging.getLogger("headrace.ingest")

STORE_RETRY_AFTER = 30  # seconds, in the Retry-After of a 503 when the store cannot take the event
KEPT_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "user-agent")
KEPT_HEADER_LIMIT = 512  # characters of each kept header stored with the event
BUSY_WINDOW = 1.0  # seconds after the last stored event during which ingest counts as busy


def _json(text: str, status: int) -> web.Response:
    """An answer whose JSON is written out by hand (integers only; as json.dumps writes it): json_response's
    dumps cost more than the rest of building the response."""
    return web.Response(text=text, status=status, content_type="application/json")


def printable(text: str, limit: int) -> str:
    """Text from the wire made safe to store and show: at most `limit` characters, undecodable bytes escaped."""
    if text.isascii():  # the usual header: nothing to escape
        return text[:limit]
    return text[:limit].encode("utf-8", "backslashreplace").decode("utf-8")


class Ingestor:
    def __init__(
        self,
        settings: Settings,
        store: EventLog,
        on_commit: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.store = store
        self.on_commit = on_commit
        self.clock = clock
        self.metrics = metrics or Metrics(clock)
        self.limit = settings.server.body_limit
        self.refusals = RefusalSampler(settings.server.rejections_per_minute)
        self.last_stored = -math.inf  # time.monotonic() of the last event stored (the search indexer paces by it)
        self.reload(settings)

    def reload(self, settings: Settings) -> None:
        """Take the sources' secrets and tolerances, the routes and body_timeout of `settings` in one step (a
        config reload); a request already past its signature check finishes under the settings it began with."""
        keys = {
            name: ([decode_secret(secret.reveal()) for secret in source.secrets], parse_duration(source.tolerance))
            for name, source in settings.sources.items()
        }
        self.settings = settings
        self._keys = keys
        self._body_timeout = parse_duration(settings.server.body_timeout)
        self._routes: dict[tuple[str, str], list[Route]] = {}

    def route(self, source: str, event_type: str) -> list[Route]:
        key = (source, event_type)
        found = self._routes.get(key)
        if found is None:
            found = [self.settings.route(name) for name in self.settings.destinations_for(source, event_type)]
            if len(self._routes) < 10_000:
                self._routes[key] = found
        return found

    async def handle(self, request: web.Request) -> web.Response:
        source = request.match_info["source"]
        verifier = self._keys.get(source)
        if verifier is None:
            shown = printable(source, 64)
            return await self._refuse(
                request,
                shown,
                404,
                "unknown_source",
                f"no source named {shown!r}; configure [sources.NAME] or fix the URL",
            )
        if request.content_length is not None and request.content_length > self.limit:
            return await self._too_large(request, source)
        keys, tolerance = verifier
        try:
            if request.content.is_eof():  # the whole body came with the headers (the usual case): nothing to wait for
                body = await request.read()
            else:
                async with asyncio.timeout(self._body_timeout):
                    body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return await self._too_large(request, source)
        except TimeoutError:
            response = await self._refuse(
                request,
                source,
                408,
                "body_timeout",
                f"the body did not arrive within {self.settings.server.body_timeout} ([server] body_timeout)",
            )
            response.force_close()
            return response
        except (ConnectionError, aiohttp.ClientPayloadError, RuntimeError) as exc:
            # The client went away mid-upload (or was closed by the connection cap): nobody to answer.
            # (aiohttp raises RuntimeError("Connection closed.") from the body stream on the asyncio loop.)
            log.info(
                "upload aborted: %s", exc or type(exc).__name__, extra={"source": source, "remote": request.remote}
            )
            response = web.Response(status=400)
            response.force_close()
            return response
        headers = request.headers
        now = self.clock()
        try:
            verified = verify(
                keys,
                headers.get("webhook-id"),
                headers.get("webhook-timestamp"),
                headers.get("webhook-signature"),
                body,
                now,
                tolerance,
            )
        except SignatureError as exc:
            return await self._refuse(request, source, exc.status, exc.reason, exc.message)
        try:
            parsed = parse_object(body)
        except BodyError as exc:
            return await self._refuse(request, source, 400, exc.reason, exc.message)
        event_type = parsed.get("type")
        event_type = event_type if isinstance(event_type, str) else ""
        destinations = self.route(source, event_type)
        event = NewEvent(
            source=source,
            webhook_id=verified.webhook_id,
            event_type=event_type,
            webhook_timestamp=verified.timestamp,
            received_at=now,
            body=body,
            headers={name: printable(headers[name], KEPT_HEADER_LIMIT) for name in KEPT_HEADERS if name in headers},
            event_key=body_key(parsed),
            occurred_at=body_time(parsed),
        )
        try:
            result = await self.store.ingest(event, destinations)
        except Exception as exc:  # nothing was stored: say so, so that Dodo sends the event again
            return self._unavailable(source, verified.webhook_id, exc)
        outcome = "duplicate" if result.duplicate else "accepted" if result.duplicate_of is None else "late copy"
        logs.webhook_received(outcome, source, result.event_id, verified.webhook_id, event_type, result.deliveries)
        if result.duplicate:
            self.metrics.inc("headrace_events_received_total", source, "duplicate")
            return _json(f'{{"status": "duplicate", "event_id": {result.event_id}}}', 200)
        self.metrics.inc("headrace_events_received_total", source, "accepted")
        self.last_stored = time.monotonic()
        if result.deliveries:
            self.on_commit()
        answer = f'{{"status": "accepted", "event_id": {result.event_id}, "deliveries": {result.deliveries}'
        if result.duplicate_of is not None:  # a late copy of a reconciled event: not delivered
            answer += f', "duplicate_of": {result.duplicate_of}'
        return _json(answer + "}", 202)

    def busy(self) -> bool:
        """An event was stored within the last `BUSY_WINDOW` seconds (background work then keeps to a share)."""
        return time.monotonic() - self.last_stored < BUSY_WINDOW

    def _unavailable(self, source: str, webhook_id: str, exc: Exception) -> web.Response:
        self.metrics.inc("headrace_events_rejected_total", source, "store_unavailable")
        log.error(
            "could not store a webhook, answered 503: %s",
            exc,
            extra={"source": source, "webhook_id": webhook_id, "reason": "store_unavailable"},
        )
        message = "the event could not be stored durably and was not accepted; send it again later"
        return web.json_response(
            {"error": "store_unavailable", "message": message},
            status=503,
            headers={"Retry-After": str(STORE_RETRY_AFTER)},
        )

    async def _too_large(self, request: web.Request, source: str) -> web.Response:
        return await self._refuse(
            request,
            source,
            413,
            "body_too_large",
            f"the body is larger than the {self.limit}-byte limit ([server] body_limit)",
        )

    async def _refuse(self, request: web.Request, source: str, status: int, reason: str, message: str) -> web.Response:
        """Count every refusal in memory; record and log only a sample of them (see refusals.py)."""
        remote = request.remote or ""
        counted_as = source if status != 404 else UNKNOWN
        self.metrics.inc("headrace_events_rejected_total", counted_as, reason)
        now = self.clock()
        record, summaries = self.refusals.admit(counted_as, reason, status, now)
        await self._summarize(summaries)
        if record:
            log.warning("refused webhook: %s", message, extra={"source": source, "reason": reason, "remote": remote})
            await self._write(Rejection(source, reason, status, message, remote, now))
        return web.json_response({"error": reason, "message": message}, status=status)

    async def flush_refusals(self, *, final: bool = False) -> None:
        """Write the summary rows of a minute that has ended (all pending ones when `final`, at shutdown)."""
        await self._summarize(self.refusals.due(self.clock(), final=final))

    async def _summarize(self, summaries: list[Rejection]) -> None:
        for summary in summaries:
            log.warning(
                "refused webhooks: %s", summary.detail, extra={"source": summary.source, "reason": summary.reason}
            )
            await self._write(summary)

    async def _write(self, rejection: Rejection) -> None:
        try:
            await self.store.reject(rejection)
        except Exception:
            log.exception("could not record a rejection")
