"""POST /webhooks/{source}: verify, bound, parse, route, store durably, then answer.

Answers (DESIGN contract): 202 accepted, 200 duplicate (stored once), 400 missing/malformed webhook
headers or a body that is not a JSON object, 401 bad signature or timestamp out of tolerance, 404
unknown source, 413 body over the limit. A refusal stores no body, only a counted rejection record.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable

from aiohttp import web

from headrace import logs
from headrace.config import Settings
from headrace.durations import parse_duration
from headrace.ingest.signature import SignatureError, decode_secret, verify
from headrace.metrics import Metrics
from headrace.models import NewEvent, Rejection
from headrace.store.base import Store

log = logging.getLogger("headrace.ingest")

KEPT_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "user-agent")


class Ingestor:
    def __init__(
        self,
        settings: Settings,
        store: Store,
        on_commit: Callable[[], None] = lambda: None,
        clock: Callable[[], float] = time.time,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.on_commit = on_commit
        self.clock = clock
        self.metrics = metrics or Metrics(clock)
        self.limit = settings.server.body_limit
        self._keys = {
            name: [decode_secret(secret.reveal()) for secret in source.secrets]
            for name, source in settings.sources.items()
        }
        self._tolerance = {name: parse_duration(source.tolerance) for name, source in settings.sources.items()}
        self._routes: dict[tuple[str, str], list[str]] = {}

    def route(self, source: str, event_type: str) -> list[str]:
        key = (source, event_type)
        found = self._routes.get(key)
        if found is None:
            found = self.settings.destinations_for(source, event_type)
            if len(self._routes) < 10_000:
                self._routes[key] = found
        return found

    async def handle(self, request: web.Request) -> web.Response:
        source = request.match_info["source"]
        keys = self._keys.get(source)
        if keys is None:
            return await self._refuse(
                request,
                source[:64],
                404,
                "unknown_source",
                f"no source named {source[:64]!r}; configure [sources.NAME] or fix the URL",
            )
        if request.content_length is not None and request.content_length > self.limit:
            return await self._too_large(request, source)
        try:
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return await self._too_large(request, source)
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
                self._tolerance[source],
            )
        except SignatureError as exc:
            return await self._refuse(request, source, exc.status, exc.reason, exc.message)
        try:
            parsed = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return await self._refuse(request, source, 400, "invalid_json", "the body is not valid JSON")
        if not isinstance(parsed, dict):
            return await self._refuse(request, source, 400, "not_an_object", "the body must be a JSON object")
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
            headers={name: headers[name] for name in KEPT_HEADERS if name in headers},
        )
        result = await self.store.ingest(event, destinations)
        outcome = "duplicate" if result.duplicate else "accepted"
        logs.webhook_received(outcome, source, result.event_id, verified.webhook_id, event_type, result.deliveries)
        if result.duplicate:
            self.metrics.inc("headrace_events_received_total", source, "duplicate")
            return web.json_response({"status": "duplicate", "event_id": result.event_id}, status=200)
        self.metrics.inc("headrace_events_received_total", source, "accepted")
        if result.deliveries:
            self.on_commit()
        return web.json_response(
            {"status": "accepted", "event_id": result.event_id, "deliveries": result.deliveries}, status=202
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
        remote = request.remote or ""
        self.metrics.inc("headrace_events_rejected_total", source if status != 404 else "(unknown)", reason)
        log.warning("refused webhook: %s", message, extra={"source": source, "reason": reason, "remote": remote})
        try:
            await self.store.reject(Rejection(source, reason, status, message, remote, self.clock()))
        except Exception:
            log.exception("could not record a rejection")
        return web.json_response({"error": reason, "message": message}, status=status)
