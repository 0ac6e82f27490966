"""The console's pages: server-rendered HTML over the App (events, timelines, replays, rejections)."""

from __future__ import annotations

import json
import time
from importlib import resources
from typing import Any

import jinja2
from aiohttp import web

from headrace import views
from headrace.console.auth import public, root_of, session_of
from headrace.http.access import APP_KEY, app_of

_env = jinja2.Environment(
    loader=jinja2.FunctionLoader(
        lambda name: resources.files("headrace.console").joinpath("templates", name).read_text("utf-8")
    ),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
INDENT_DEPTH = 24  # levels of JSON shown indented; deeper ones on one line (indenting is quadratic in depth)


def pretty(value: Any, depth: int = 0) -> str:
    """JSON indented by two spaces for INDENT_DEPTH levels, the rest compact: a 960-level payload (a script's
    output may be that deep) is a page of its own size, not megabytes of indentation."""
    if depth >= INDENT_DEPTH or not isinstance(value, dict | list) or not value:
        return _compact(value)
    inner, outer = "  " * (depth + 1), "  " * depth
    if isinstance(value, dict):
        parts = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {pretty(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(parts) + f"\n{outer}}}"
    return "[\n" + ",\n".join(f"{inner}{pretty(v, depth + 1)}" for v in value) + f"\n{outer}]"


class _Text(str):
    """Punctuation already written as JSON, told apart from the string values `_compact` encodes."""


def _compact(value: Any) -> str:
    """`value` as one line of JSON, with an explicit stack: no recursion limit for however deep it is."""
    out: list[str] = []
    todo: list[Any] = [value]
    while todo:
        item = todo.pop()
        if type(item) is _Text:
            out.append(item)
        elif isinstance(item, dict) and item:
            todo.append(_Text("}"))
            for i, (key, inner) in reversed(list(enumerate(item.items()))):
                todo += [inner, _Text(("" if i == 0 else ", ") + json.dumps(str(key), ensure_ascii=False) + ": ")]
            todo.append(_Text("{"))
        elif isinstance(item, list) and item:
            todo.append(_Text("]"))
            for i, inner in reversed(list(enumerate(item))):
                todo += [inner, _Text(", ")] if i else [inner]
            todo.append(_Text("["))
        else:
            out.append(json.dumps(item, ensure_ascii=False, allow_nan=False))
    return "".join(out)


_env.filters["pretty"] = pretty


def render(request: web.Request, name: str, **context: Any) -> web.Response:
    root = root_of(request)
    session = session_of(request)
    html = _env.get_template(name).render(
        secured=request.app[APP_KEY].settings.server.management == "token",
        root=root,
        here=request.path.removeprefix(root) or "/",
        csrf=session.csrf if session is not None else "",
        **context,
    )
    return web.Response(text=html, content_type="text/html", headers={"Cache-Control": "no-store"})


async def events_page(request: web.Request) -> web.Response:
    app = app_of(request)
    error = None
    try:
        flt = views.event_filter(request.query, app.clock())
    except ValueError as exc:
        error, flt = str(exc), views.event_filter({}, app.clock())
    events = [views.event_summary(e) for e in await app.store.list_events(flt)]
    stats = await app.store.stats(rejections=False)
    counts: dict[str, int] = {}
    for (_, status), n in stats.deliveries.items():
        counts[status] = counts.get(status, 0) + n
    oldest = None if stats.oldest_pending_at is None else round(time.time() - stats.oldest_pending_at)
    from headrace.console.activity import charts_context  # the pictures (activity.py imports this module)

    return render(
        request,
        "events.html",
        charts=await charts_context(request),
        events=events,
        query={k: v for k, v in request.query.items() if k != "before"},  # the next page's link sets its own
        error=error,
        counts=counts,
        oldest_pending_s=oldest,
        next_before=events[-1]["id"] if len(events) == flt.limit else None,
        outages=[o.message() for o in await app.outages.current()],
    )


async def event_page(request: web.Request) -> web.Response:
    app = app_of(request)
    event = await app.store.get_event(request.match_info["key"])
    if event is None:
        return render(request, "missing.html", key=request.match_info["key"])
    tests = [views.test_delivery(t, app.settings) for t in await app.previews().tests(event.id, 20)]
    return render(
        request,
        "event.html",
        event=views.event_detail(event, app.settings),
        replayed=request.query.get("replayed"),
        tests=tests,
    )


async def replay_action(request: web.Request) -> web.Response:
    app = app_of(request)
    try:
        results = await app.replays.replay([request.match_info["key"]])
    except LookupError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    count = sum(len(r.job_ids) for r in results)
    raise web.HTTPSeeOther(f"{root_of(request)}/events/{results[0].event_id}?replayed={count}")


async def rejections_page(request: web.Request) -> web.Response:
    app = app_of(request)
    items = [views.rejection(r) for r in await app.store.list_rejections(None, 200)]
    stats = await app.store.stats()
    counts = [{"source": s, "reason": r, "count": n} for (s, r), n in sorted(stats.rejections.items())]
    return render(request, "rejections.html", rejections=items, counts=counts, counted=views.counted_refusals(app))


async def destinations_page(request: web.Request) -> web.Response:
    app = app_of(request)
    stats = await app.store.stats(rejections=False)
    rows = []
    for name in app.settings.destinations:
        row = views.destination(name, app.settings)
        row["counts"] = {status: n for (dest, status), n in stats.deliveries.items() if dest == name}
        rows.append(row)
    return render(request, "destinations.html", destinations=rows)


# Every file under static/, and its type: nothing else is served.
STATIC = {"console.css": "text/css", "try.js": "text/javascript", "once.js": "text/javascript"}


@public
async def static_file(request: web.Request) -> web.Response:
    name = request.match_info["name"]
    if name not in STATIC:
        raise web.HTTPNotFound()
    body = resources.files("headrace.console").joinpath("static", name).read_bytes()
    return web.Response(body=body, content_type=STATIC[name], headers={"Cache-Control": "max-age=3600"})


@public
async def login_page(request: web.Request) -> web.Response:
    return render(request, "login.html", failed=False, wait=None)
