"""REST resources under /api/v1: an aiohttp sub-application whose middleware checks the admin token, so every
route added here is guarded. Handlers call the App, never a backend directly."""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from headrace import previews
from headrace import views as serialize
from headrace.api.openapi import document
from headrace.app import App
from headrace.durations import parse_since
from headrace.http.access import APP_KEY, bearer_middleware, json_answer, read_body, refused
from headrace.http.access import app_of as _app
from headrace.http.access import problem as _problem
from headrace.models import ID_MAX, no_event, parse_id
from headrace.ops import bulk
from headrace.views import KEY_MAX_LENGTH, event_filter

PREFIX = "/api/v1"


async def list_events(request: web.Request) -> web.Response:
    app = _app(request)
    try:
        flt = event_filter(request.query, app.clock())
    except ValueError as exc:
        return _problem(400, "bad_query", str(exc))
    events = await app.store.list_events(flt)
    body: dict[str, Any] = {"events": [serialize.event_summary(e) for e in events]}
    if len(events) == flt.limit:
        body["next_before"] = events[-1].id
    return web.json_response(body)


def _key(request: web.Request) -> str | None:
    """The path's event id or webhook-id, None past KEY_MAX_LENGTH (no stored event has such a key)."""
    key = request.match_info["key"]
    return key if len(key) <= KEY_MAX_LENGTH else None


def _no_event(request: web.Request) -> web.Response:
    return _problem(404, "not_found", no_event(request.match_info["key"]))


async def get_event(request: web.Request) -> web.Response:
    app = _app(request)
    key = _key(request)
    event = None if key is None else await app.store.get_event(key)
    if event is None:
        return _no_event(request)
    return web.json_response(serialize.event_detail(event, app.settings))


async def replay_event(request: web.Request) -> web.Response:
    app = _app(request)
    key = _key(request)
    if key is None:
        return _no_event(request)
    try:
        results = await app.replays.replay([key])
    except LookupError as exc:
        return _problem(404, "not_found", str(exc))
    return web.json_response({"replayed": [{"event_id": r.event_id, "job_ids": r.job_ids} for r in results]})


async def replay_failed(request: web.Request) -> web.Response:
    app = _app(request)
    await read_body(request)
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
    results = await app.replays.failed(since)
    return web.json_response({"replayed": [{"event_id": r.event_id, "job_ids": r.job_ids} for r in results]})


async def bulk_count(request: web.Request) -> web.Response:
    """The dry run: what a bulk replay of the events this filter matches would send, and its token."""
    app = _app(request)
    query = {k: v for k, v in request.query.items() if k not in ("limit", "before")}
    try:
        flt = event_filter(query, app.clock())
        plan = await app.replays.plan(flt)
    except ValueError as exc:
        return _problem(400, "bad_query", str(exc))
    except bulk.TooMany as exc:
        return _problem(422, "too_many_events", str(exc))
    return web.json_response(plan.as_json())


async def bulk_replay(request: web.Request) -> web.Response:
    """Execute a dry run's token: sent only if the same filter still counts the same."""
    app = _app(request)
    await read_body(request)
    try:
        spec = await request.json()
    except ValueError:
        spec = None
    if not isinstance(spec, dict) or not isinstance(spec.get("token"), str):
        return _problem(400, "bad_body", 'send JSON like {"token": "<token from GET /api/v1/replay/bulk>"}')
    if not spec["token"] or len(spec["token"]) > bulk.TOKEN_MAX_CHARS:
        return _problem(400, "bad_token", f"the token is empty or longer than {bulk.TOKEN_MAX_CHARS} characters")
    try:
        plan, results = await app.replays.bulk(spec["token"])
    except bulk.BadToken as exc:  # well-formed JSON, but no count of this headrace gave it: nothing to replay
        return _problem(404, "unknown_token", str(exc))
    except bulk.TooMany as exc:
        return _problem(422, "too_many_events", str(exc))
    except bulk.Changed as exc:
        return web.json_response({"error": "count_changed", "message": str(exc), "now": exc.now.as_json()}, status=409)
    return web.json_response(
        {
            "deliveries": sum(len(r.job_ids) for r in results),
            "destinations": dict(sorted(plan.destinations.items())),
            "replayed": [{"event_id": r.event_id, "job_ids": r.job_ids} for r in results],
        }
    )


async def list_rejections(request: web.Request) -> web.Response:
    app = _app(request)
    try:
        since = parse_since(request.query["since"], app.clock()) if request.query.get("since") else None
    except ValueError as exc:
        return _problem(400, "bad_query", f"since: {exc}")
    items = await app.store.list_rejections(since, 200)
    stats = await app.store.stats()
    counts = [{"source": s, "reason": r, "count": n} for (s, r), n in sorted(stats.rejections.items())]
    return web.json_response(
        {
            "counts": counts,
            "counted": serialize.counted_refusals(app),
            "rejections": [serialize.rejection(i) for i in items],
        }
    )


async def list_destinations(request: web.Request) -> web.Response:
    app = _app(request)
    return web.json_response(
        {"destinations": [serialize.destination(name, app.settings) for name in app.settings.destinations]}
    )


async def _try_request(request: web.Request) -> Any:
    """The JSON body of a preview or test-delivery request (previews.Refused when too big or not JSON)."""
    body = await read_body(request)
    previews.check_size(len(body), "the request body")
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        raise previews.Refused("bad_body", f"the body is not JSON; send an object like {previews.EXAMPLE}") from None


async def preview(request: web.Request) -> web.Response:
    """What a delivery would send: built by the worker's own function, nothing sent."""
    try:
        answer = await _app(request).previews().preview(await _try_request(request))
    except previews.Refused as exc:
        return refused(exc)
    return await json_answer(answer)


async def send_test(request: web.Request) -> web.Response:
    """Send the previewed request once, as a test delivery (its own job id, never an event's delivery)."""
    app = _app(request)
    try:
        test = await app.previews().send_test(await _try_request(request))
    except previews.Refused as exc:
        return refused(exc)
    return web.json_response(serialize.test_delivery(test, app.settings), status=201)


async def list_tests(request: web.Request) -> web.Response:
    app = _app(request)
    event_id = request.query.get("event_id")
    if event_id is not None and parse_id(event_id) is None:
        return _problem(400, "bad_query", f"event_id: an event id (0 to {ID_MAX})")
    limit = request.query.get("limit", "20")
    if not (limit.isascii() and limit.isdigit()) or not 1 <= int(limit) <= 100:
        return _problem(400, "bad_query", "limit: a number from 1 to 100")
    tests = await app.previews().tests(int(event_id) if event_id else None, int(limit))
    return web.json_response({"tests": [serialize.test_delivery(t, app.settings) for t in tests]})


async def get_test(request: web.Request) -> web.Response:
    app = _app(request)
    key = request.match_info["id"]
    test_id = parse_id(key)
    test = None if test_id is None else await app.previews().test(test_id)
    if test is None:
        return _problem(404, "not_found", f"no test delivery {key!r}")
    return web.json_response(serialize.test_delivery(test, app.settings))


async def openapi(request: web.Request) -> web.Response:
    """Public, on the root application: the document describes the API, it reveals nothing stored."""
    return web.json_response(document())


def build(app: App) -> web.Application:
    """The /api/v1 sub-application (mount it at PREFIX), guarded by the admin token."""
    api = web.Application(middlewares=[bearer_middleware])
    api[APP_KEY] = app
    api.router.add_get("/events", list_events)
    api.router.add_get("/events/{key}", get_event)
    api.router.add_post("/events/{key}/replay", replay_event)
    api.router.add_post("/replay", replay_failed)
    api.router.add_get("/replay/bulk", bulk_count)
    api.router.add_post("/replay/bulk", bulk_replay)
    api.router.add_get("/rejections", list_rejections)
    api.router.add_get("/destinations", list_destinations)
    api.router.add_post("/preview", preview)
    api.router.add_post("/test-deliveries", send_test)
    api.router.add_get("/test-deliveries", list_tests)
    api.router.add_get("/test-deliveries/{id}", get_test)
    return api
