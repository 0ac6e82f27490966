"""The console's Setup page: each step from zero to the first job, its state now, and the command that fixes it
(check/setup.py decides the states)."""

from __future__ import annotations

import aiohttp
from aiohttp import web

from headrace import views
from headrace.check.setup import event_steps, setup_steps
from headrace.console.pages import render
from headrace.http.access import app_of
from headrace.models import EventRow

QUESTION_TIMEOUT = 5.0  # seconds per question to Windmill or Dodo: the page answers within a few of them


async def setup_page(request: web.Request) -> web.Response:
    app = app_of(request)
    async with aiohttp.ClientSession(headers={"User-Agent": "headrace-console-setup"}) as session:
        steps = await setup_steps(app.settings, session, QUESTION_TIMEOUT)
    now = app.clock()
    newest = await app.store.list_events(views.event_filter({"limit": "1"}, now))
    delivered = await app.store.list_events(views.event_filter({"status": "delivered", "limit": "1"}, now))

    def describe(rows: list[EventRow]) -> str | None:
        if not rows:
            return None
        summary = views.event_summary(rows[0])
        return f"#{summary['id']} {summary['type']} from {summary['source']} at {summary['received_at']}"

    steps += event_steps(describe(newest), describe(delivered))
    return render(request, "setup.html", steps=steps, done=sum(step.state == "done" for step in steps))
