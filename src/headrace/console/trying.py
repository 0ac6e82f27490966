"""The console's "Try a transformation" page: pick a destination and an event (a bundled sample, a variant, or a
stored event), edit the script, see what a delivery would send, send a test, and see how to save the script.

The page is server-rendered; `static/try.js` sends the form to the JSON actions here (`preview`, `send`,
`test`), which answer what `POST /api/v1/preview` and `/api/v1/test-deliveries` answer: both call the service
in headrace/previews.py, which builds the request with the worker's own `build_request`. The actions are console POSTs,
so the console's guard applies: a session, the console's Origin and the session's CSRF token in the form.

Saving is shown, not done (docs/transformations.md, "Saving a script"): the page says which file to write,
which `transform = "…"` line to put under which `[destinations.NAME]`, and offers the script as a download.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath
from typing import Any

from aiohttp import web

from headrace import previews, views
from headrace.config import DestinationSettings
from headrace.console.pages import render
from headrace.dodo import samples
from headrace.http.access import app_of, json_answer, problem, read_body, refused
from headrace.models import parse_id
from headrace.previews import FIELDS, MAX_SCRIPT
from headrace.transform.scripts import BUILTIN_PREFIX

STARTER = (
    "function handler(webhook) {\n"
    "  // webhook.payload is the Dodo event; set it to what the Windmill script should get\n"
    "  return webhook;\n"
    "}\n"
)


def save_hint(name: str, dest: DestinationSettings) -> dict[str, str]:
    """Where an edited script of destination `name` goes: the .js file (the configured one, or a new one
    under transforms/) and the `transform = "…"` line of its [destinations.NAME] table."""
    configured = dest.transform or ""
    if configured and not configured.startswith(BUILTIN_PREFIX):
        file = configured
    else:
        file = f"transforms/{_file_name(name)}.js"
    return {
        "file": file,
        "line": f'transform = "{file}"',
        "table": f"[destinations.{name}]",
        "changes_config": "no" if file == configured else "yes",
        "download": _file_name(PurePosixPath(file).name),
    }


def _file_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) or "transform"


async def try_page(request: web.Request) -> web.Response:
    app = app_of(request)
    previews = app.previews()
    destinations = []
    for name, dest in app.settings.destinations.items():
        script = app.script_of(name)
        destinations.append(
            {
                "name": name,
                "transform": dest.transform or "",
                "source": script.source if script is not None else STARTER,
                "schema": dest.schema_mode,
                "target": f"{dest.target.kind} {dest.target.path}",
                "save": save_hint(name, dest),
            }
        )
    types = [{"name": t, "variants": ",".join(samples.variants(t))} for t in samples.EVENT_TYPES]
    tests = [views.test_delivery(t, app.settings) for t in await previews.tests(None, 10)]
    return render(
        request,
        "try.html",
        destinations=destinations,
        types=types,
        tests=tests,
        chosen=request.query.get("destination", ""),
        event=request.query.get("event", ""),
        base_dir=str(app.settings.base_dir.resolve()),
        max_script=MAX_SCRIPT,
    )


async def _form(request: web.Request) -> dict[str, Any]:
    """The Try form's fields as a request for previews (previews.Refused when too big); empty fields left out."""
    previews.check_size(len(await read_body(request)), "the form")
    form = await request.post()
    return {name: value for name in FIELDS if isinstance(value := form.get(name), str) and value != ""}


async def preview_action(request: web.Request) -> web.Response:
    try:
        answer = await app_of(request).previews().preview(await _form(request))
    except previews.Refused as exc:
        return refused(exc)
    return await json_answer(answer)


async def send_action(request: web.Request) -> web.Response:
    app = app_of(request)
    try:
        test = await app.previews().send_test(await _form(request))
    except previews.Refused as exc:
        return refused(exc)
    return web.json_response(views.test_delivery(test, app.settings), status=201)


async def test_status(request: web.Request) -> web.Response:
    app = app_of(request)
    key = request.match_info["key"]
    test_id = parse_id(key)
    test = None if test_id is None else await app.previews().test(test_id)
    if test is None:
        return problem(404, "not_found", f"no test delivery {key!r}")
    return web.json_response(views.test_delivery(test, app.settings))


async def download_action(request: web.Request) -> web.Response:
    """The script in the form, as a .js file to save where the page says (nothing is written on the server)."""
    try:
        previews.check_size(len(await read_body(request)), "the form")
    except previews.Refused as exc:
        return refused(exc)
    form = await request.post()
    name, script = form.get("destination"), form.get("script")
    settings = app_of(request).settings
    if not isinstance(name, str) or name not in settings.destinations:
        return problem(404, "not_found", f"no destination {name!r}")
    if not isinstance(script, str) or not script.strip():
        return problem(400, "bad_body", "script: empty; there is nothing to download")
    if len(script.encode("utf-8", "surrogatepass")) > MAX_SCRIPT:
        return problem(413, "too_large", f"script: over {MAX_SCRIPT:,} bytes")
    file = save_hint(name, settings.destinations[name])["download"]
    return web.Response(
        text=script.replace("\r\n", "\n"),
        content_type="text/javascript",
        headers={"Content-Disposition": f'attachment; filename="{file}"', "Cache-Control": "no-store"},
    )
