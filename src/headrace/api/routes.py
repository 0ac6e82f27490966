"""REST resources under /api/v1. Handlers call the App, never a backend directly."""

from __future__ import annotations

from typing import Any, get_args

from aiohttp import web

from headrace.api import serialize
from headrace.api.openapi import document
from headrace.app import App
from headrace.durations import parse_since
from headrace.models import EventFilter, EventStatus

APP_KEY = web.AppKey("headrace_app", App)
STATUSES = get_args(EventStatus)


def _problem(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"error": error, "message": message}, status=status)


def _app(request: web.Request) -> App:
    return request.app[APP_KEY]


def event_filter(query: Any, now: float) -> EventFilter:
    """Build a filter from query parameters; ValueError names the bad one."""
    status = query.get("status") or None
    if status is not None and status not in STATUSES:
        raise ValueError(f"status={status!r}: use one of {', '.join(STATUSES)}")
    limit_text = query.get("limit", "50")
    if not limit_text.isdigit() or not 1 <= int(limit_text) <= 1000:
        raise ValueError("limit: a number from 1 to 1000")
    before = query.get("before")
    if before is not None and not before.isdigit():
        raise ValueError("before: an event id")
    return EventFilter(
        status=status,
        event_type=query.get("type") or None,
        source=query.get("source") or None,
        since=parse_since(query["since"], now) if query.get("since") else None,
        until=parse_since(query["until"], now) if query.get("until") else None,
        limit=int(limit_text),
        before_id=int(before) if before else None,
    )


async def list_events(request: web.Request) -> web.Response:
    app = _app(request)
    try:
        flt = event_filter(request.query, app.clock())
    except ValueError as exc:
        return _problem(400, "bad_query", str(exc))
    events = await app.list_events(flt)
    body: dict[str, Any] = {"events": [serialize.event_summary(e) for e in events]}
    if len(events) == flt.limit:
        body["next_before"] = events[-1].id
    return web.json_response(body)


async def get_event(request: web.Request) -> web.Response:
    app = _app(request)
    event = await app.get_event(request.match_info["key"])
    if event is None:
        return _problem(404, "not_found", f"no event {request.match_info['key']!r} (use an event id or webhook-id)")
    return web.json_response(serialize.event_detail(event, app.settings))


async def replay_event(request: web.Request) -> web.Response:
    app = _app(request)
    try:
        results = await app.replay([request.match_info["key"]])
    except LookupError as exc:
        return _problem(404, "not_found", str(exc))
    return web.json_response({"replayed": [{"event_id": r.event_id, "job_ids": r.job_ids} for r in results]})


async def replay_failed(request: web.Request) -> web.Response:
    app = _app(request)
    try:
        spec = await request.json()
    except ValueError:
        return _problem(400, "bad_body", 'send JSON like {"failed": true, "since": "24h"}')
    if not isinstance(spec, dict) or spec.get("failed") is not True or not isinstance(spec.get("since"), str):
        return _problem(400, "bad_body", 'send JSON like {"failed": true, "since": "24h"}')
    try:
        since = parse_since(spec["since"], app.clock())
    except ValueError as exc:
        return _problem(400, "bad_body", f"since: {exc}")
    results = await app.replay_failed(since)
    return web.json_response({"replayed": [{"event_id": r.event_id, "job_ids": r.job_ids} for r in results]})


async def list_rejections(request: web.Request) -> web.Response:
    app = _app(request)
    try:
        since = parse_since(request.query["since"], app.clock()) if request.query.get("since") else None
    except ValueError as exc:
        return _problem(400, "bad_query", str(exc))
    items = await app.rejections(since, 200)
    stats = await app.stats()
    counts = [{"source": s, "reason": r, "count": n} for (s, r), n in sorted(stats.rejections.items())]
    return web.json_response({"counts": counts, "rejections": [serialize.rejection(i) for i in items]})


async def list_destinations(request: web.Request) -> web.Response:
    app = _app(request)
    return web.json_response(
        {"destinations": [serialize.destination(name, app.settings) for name in app.settings.destinations]}
    )


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(document())


def add_routes(router: web.UrlDispatcher) -> None:
    router.add_get("/api/v1/events", list_events)
    router.add_get("/api/v1/events/{key}", get_event)
    router.add_post("/api/v1/events/{key}/replay", replay_event)
    router.add_post("/api/v1/replay", replay_failed)
    router.add_get("/api/v1/rejections", list_rejections)
    router.add_get("/api/v1/destinations", list_destinations)
    router.add_get("/api/openapi.json", openapi)
