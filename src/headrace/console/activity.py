"""The console's pictures: the charts on the events page, and a page per destination with its charts and its
last errors. The numbers come from `ops.charts.Charts` (bounded by the chosen window), the SVG from charts.py."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from headrace import views
from headrace.console import charts
from headrace.console.pages import render
from headrace.http.access import app_of
from headrace.ops.charts import CHART_WINDOWS

DEFAULT_WINDOW = "6h"


def window_of(request: web.Request) -> str:
    """The chart window the page asks for (?window=1h|6h|24h); anything else is the default."""
    given = request.query.get("window", DEFAULT_WINDOW)
    return given if given in CHART_WINDOWS else DEFAULT_WINDOW


async def charts_context(request: web.Request, destination: str | None = None) -> dict[str, Any]:
    """What events_charts.html shows: the three charts of the window, and the windows to switch to."""
    window = window_of(request)
    activity = await app_of(request).charts.activity(window, destination)
    prefix = "chart-dest" if destination is not None else "chart-all"
    subject = "" if destination is None else f" to {destination}"
    # Switching the window keeps the filters but starts the list again from the newest event (no `before`).
    others = {k: v for k, v in request.query.items() if k not in ("window", "before")}
    return {
        "window": window,
        "windows": [(name, {**others, "window": name}) for name in CHART_WINDOWS],
        "outcomes": charts.outcomes(activity, f"{prefix}-outcomes", subject),
        "latency": charts.latency(activity, f"{prefix}-latency", subject, width=charts.WIDTH // 2),
        "jobs": charts.job_failures(activity, f"{prefix}-jobs", subject, width=charts.WIDTH // 2),
    }


async def destination_page(request: web.Request) -> web.Response:
    app = app_of(request)
    name = request.match_info["name"]
    if name not in app.settings.destinations:
        response = render(request, "destination_missing.html", missing=name, names=sorted(app.settings.destinations))
        response.set_status(404)
        return response
    stats = await app.store.stats()
    errors = [
        {
            "at": views.iso(e.at),
            "event_id": e.event_id,
            "webhook_id": e.webhook_id,
            "event_type": e.event_type,
            "generation": e.generation,
            "status": e.status,
            "error": e.error,
        }
        for e in await app.charts.destination_errors(name)
    ]
    return render(
        request,
        "destination.html",
        destination=views.destination(name, app.settings),
        counts={status: n for (dest, status), n in sorted(stats.deliveries.items()) if dest == name},
        errors=errors,
        charts=await charts_context(request, name),
    )
