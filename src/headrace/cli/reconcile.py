"""`headrace reconcile`: the events Dodo gave up on, found in Dodo's API and (with --apply) stored to deliver.

Thin: arguments -> settings -> the source's Dodo access -> dodo/reconcile.py -> lines or JSON. Progress goes
to stderr, so `--json` on stdout stays one JSON array.
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from headrace.cli.shared import UsageError, print_json, run, since_option
from headrace.config import Settings, load
from headrace.config.sources import DodoAccess, dodo_access
from headrace.observe import logs

MAX_WINDOW = 400 * 86400.0  # seconds: a longer window is a typo (a year back is already very far)

DESCRIPTION = """\
Dry run by default: lists each event Dodo would have sent for the payments, refunds, disputes,
subscriptions, license keys and payouts created in the window that headrace has not stored (type, object
id, event key, why). --apply stores them (origin "reconcile", webhook-id hr_recon_...); a running
`serve` delivers them like any other event, and a real webhook arriving later for the same event is
stored but not delivered again. A second --apply adds nothing. Uses [sources.NAME] api_key and mode
(written by `connect dodo`); DODO_PAYMENTS_BASE_URL overrides the address. Dodo's lowest rate limit is
240 requests a minute: the time it will take is printed before the objects are retrieved."""


def add_parser(sub: Any, config_help: str) -> None:
    p = sub.add_parser(
        "reconcile",
        help="find (and with --apply, deliver) events Dodo stopped retrying while headrace was down",
        description=DESCRIPTION,
    )
    p.add_argument("-c", "--config", default="headrace.toml", help=config_help)
    p.add_argument("--source", default=None, help="the source to reconcile (default: the only one, or `dodo`)")
    p.add_argument("--since", required=True, help='objects created from: "2d", an RFC 3339 time, a date')
    p.add_argument("--until", default=None, help="objects created up to (default: now)")
    p.add_argument("--apply", action="store_true", help="store the missing events so that serve delivers them")
    p.add_argument("--json", action="store_true", help="a JSON array of {type, object_id, event_key}")
    p.set_defaults(func=cmd_reconcile)


def _source(settings: Settings, name: str | None) -> str:
    if name is None:
        names = list(settings.sources)
        name = names[0] if len(names) == 1 else "dodo"
    if name not in settings.sources:
        raise UsageError(f"no source named {name!r} in the config (known: {', '.join(settings.sources)}); use --source")
    return name


def _progress(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def cmd_reconcile(args: argparse.Namespace) -> int:
    settings = load(args.config)
    logs.setup("text", "warning")
    now = time.time()
    since = since_option("--since", args.since, now)
    until = since_option("--until", args.until, now) if args.until else now
    if not since < until:
        raise UsageError(f"--since ({args.since}) must be before --until ({args.until or 'now'})")
    if until - since > MAX_WINDOW:
        raise UsageError(f"the window is longer than {MAX_WINDOW / 86400:.0f} days; reconcile a shorter one")
    until = min(until, now)
    source = _source(settings, args.source)
    reference = settings.sources[source].api_key
    if reference is None:
        raise UsageError(
            f"[sources.{source}] has no api_key: run `headrace connect dodo --api-key env:DODO_PAYMENTS_API_KEY` "
            f'or add api_key = "env:DODO_PAYMENTS_API_KEY" (and mode = "test" for a test key)'
        )
    try:
        access = dodo_access(reference, settings.sources[source].mode, settings.base_dir)
    except ValueError as exc:
        raise UsageError(f"[sources.{source}] api_key: {exc}") from None
    result = run(_reconcile(settings, access, source, since, until, apply=args.apply))
    plan, stored, already = result
    if args.json:
        print_json([m.summary() for m in plan.missing])
        return 0
    print("\n".join(_lines(plan, args.apply, stored, already)))
    return 0


async def _reconcile(
    settings: Settings, access: DodoAccess, source: str, since: float, until: float, *, apply: bool
) -> Any:
    import aiohttp

    from headrace.app import App
    from headrace.dodo import reconcile
    from headrace.dodo.api import AiohttpTransport, DodoApiError, DodoClient, base_url
    from headrace.ops.reconciling import store_missing

    app = await App.open(settings, migrate=False)
    try:
        async with aiohttp.ClientSession() as session:
            client = DodoClient(
                base_url(access.mode, access.base_override),
                access.api_key.reveal(),
                AiohttpTransport(session),
                on_wait=lambda wait: _progress(f"  Dodo's rate limit (429): waiting {wait:.0f} s as it asks"),
            )
            _progress(f"reconciling source {source}: objects created {reconcile.iso(since)} .. {reconcile.iso(until)}")
            try:
                plan = await reconcile.make_plan(
                    client, lambda keys: app.store.stored_keys(source, keys), source, since, until, _progress
                )
            except DodoApiError as exc:
                raise UsageError(f"Dodo's API: {exc}") from None
        stored = already = 0
        if apply:
            stored, already = await store_missing(app.store, settings, source, plan, since, until)
        return plan, stored, already
    finally:
        await app.close()


def _lines(plan: Any, applied: bool, stored: int, already: int) -> list[str]:
    from headrace.dodo.reconcile import iso, not_reconcilable

    listed = ", ".join(f"{n} {kind}" for kind, n in plan.objects.items())
    lines = [f"listed {listed}; {plan.derived} event(s) follow from their current state"]
    if not plan.missing:
        lines.append(f"nothing missing: source {plan.source} has every one of them")
    for m in plan.missing:
        d = m.derived
        lines.append(f"MISSING  {d.event_type:30}  {d.object_id:28}  {d.event_key}")
        lines.append(f"         at {iso(d.occurred_at)} ({d.time_field}): {m.why}")
    if applied:
        lines.append(
            f"stored {stored} event(s) (origin reconcile); a running `headrace serve` delivers them"
            + (f"; {already} had arrived meanwhile" if already else "")
        )
    elif plan.missing:
        lines.append(
            f"dry run: nothing stored. Run again with --apply to store and deliver {len(plan.missing)} event(s)"
        )
    lines.append("not reconcilable (no object in Dodo's API says they happened):")
    lines.extend(f"  {line}" for line in not_reconcilable())
    return lines
