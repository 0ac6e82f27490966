"""Bulk replay in the console: count what the event list's filter matches, confirm, then replay.

GET /replay?FILTER shows the confirmation (how many deliveries, to which destinations, or why not);
POST /replay executes the token that page carries (CSRF-checked by auth.guard like every console POST).
"""

from __future__ import annotations

from urllib.parse import urlencode

from aiohttp import web

from headrace import views
from headrace.console.auth import root_of
from headrace.console.pages import render
from headrace.http.access import app_of, read_body
from headrace.ops import bulk

# The event list's paging (a bulk replay takes every matching event, not a page), its notice, the charts' window.
PAGING = ("before", "limit", "bulk_replayed", "bulk_events", "window")


def filter_query(query: dict[str, str]) -> dict[str, str]:
    """The event list's filter parameters as given (search included once the list has it), paging left out."""
    return {k: v for k, v in query.items() if k not in PAGING and v}


async def confirm_page(request: web.Request) -> web.Response:
    app = app_of(request)
    query = filter_query(dict(request.query))
    try:
        flt = views.event_filter(query, app.clock())
    except ValueError as exc:
        return _page(request, query, None, error=str(exc), status=400)
    try:
        plan = await app.replays.plan(flt)
    except bulk.TooMany as exc:
        return _page(request, query, None, error=str(exc), status=422)
    return _page(request, query, plan)


async def replay_action(request: web.Request) -> web.Response:
    app = app_of(request)
    await read_body(request)
    form = await request.post()
    token, back = form.get("token"), form.get("back")
    query = dict(query_of(back if isinstance(back, str) else ""))
    if not isinstance(token, str):
        return _page(request, query, None, error="the form carries no bulk replay token: count again", status=400)
    try:
        _, results = await app.replays.bulk(token)
    except bulk.Changed as exc:
        return _page(request, query, exc.now, error=str(exc), status=409)
    except (bulk.BadToken, bulk.TooMany) as exc:
        return _page(request, query, None, error=str(exc), status=422)
    sent = sum(len(r.job_ids) for r in results)
    done = urlencode({**query, "bulk_replayed": sent, "bulk_events": len(results)})
    raise web.HTTPSeeOther(f"{root_of(request)}/?{done}")


def query_of(text: str) -> dict[str, str]:
    from urllib.parse import parse_qsl

    return filter_query(dict(parse_qsl(text[:4096])))


def _page(
    request: web.Request, query: dict[str, str], plan: bulk.Plan | None, *, error: str | None = None, status: int = 200
) -> web.Response:
    response = render(
        request,
        "bulk_confirm.html",
        query=query,
        back=urlencode(query),
        plan=plan,
        error=error,
        limit=bulk.BULK_REPLAY_LIMIT,
    )
    response.set_status(status)
    return response
