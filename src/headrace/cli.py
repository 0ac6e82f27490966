"""The `headrace` command. Thin: parse arguments -> settings -> app -> one call."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, TypeVar

from headrace import __version__, cli_db, logs
from headrace.cli_tools import (
    DEV_WINDMILL_DESCRIPTION,
    UsageError,
    add_dev_windmill_options,
    cmd_dev_windmill,
    cmd_samples,
    cmd_send,
    cmd_transform,
    print_json,
)
from headrace.config import ConfigError, Settings, load
from headrace.models import EVENT_STATUSES
from headrace.store.base import StoreError

T = TypeVar("T")
DEFAULT_CONFIG = "headrace.toml"


def _run(coro: Coroutine[Any, Any, T]) -> T:
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    result: T = uvloop.run(coro)
    return result


def _settings(args: argparse.Namespace) -> Settings:
    settings = load(args.config)
    logs.setup(settings.server.log_format, settings.server.log_level)
    return settings


# ---- commands ----------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from headrace.server import serve

    _run(serve(_settings(args)))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from headrace.server import run_worker

    _run(run_worker(_settings(args)))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from headrace.starter import render

    path = Path(args.config)
    if path.exists() and not args.force:
        raise UsageError(f"{path} already exists; pass --force to overwrite it")
    path.write_text(render(), encoding="utf-8")
    path.chmod(0o600)
    print(f"wrote {path} (mode 600: it holds a signing secret and the admin token). Next: headrace serve -c {path}")
    return 0


def _with_app(args: argparse.Namespace, action: Callable[[Any], Awaitable[T]]) -> T:
    from headrace.app import App

    settings = load(args.config)
    logs.setup("text", "warning")

    async def main() -> T:
        app = await App.open(settings, migrate=False)  # only serve, worker and `db migrate` change the schema
        try:
            return await action(app)
        finally:
            await app.close()

    return _run(main())


def cmd_events(args: argparse.Namespace) -> int:
    from headrace import views as serialize
    from headrace.views import event_filter

    query = {
        k: v
        for k, v in {
            "status": args.status,
            "type": args.type,
            "source": args.source,
            "since": args.since,
            "until": args.until,
            "limit": str(args.limit),
        }.items()
        if v
    }
    try:
        flt = event_filter(query, time.time())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    events = _with_app(args, lambda app: app.list_events(flt))
    rows = [serialize.event_summary(e) for e in events]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no events match")
        return 0
    print(f"{'ID':>7}  {'RECEIVED':24}  {'STATUS':9}  {'TYPE':32}  WEBHOOK-ID")
    for r in rows:
        print(f"{r['id']:>7}  {r['received_at']:24}  {r['status']:9}  {r['type'] or '(no type)':32}  {r['webhook_id']}")
    return 0


def cmd_event(args: argparse.Namespace) -> int:
    from headrace import views as serialize

    def action(app: Any) -> Awaitable[Any]:
        async def get() -> Any:
            event = await app.get_event(args.id)
            return None if event is None else serialize.event_detail(event, app.settings)

        return get()

    data = _with_app(args, action)
    if data is None:
        raise UsageError(f"no event {args.id!r} (give the event id or the webhook-id)")
    if args.json:
        print_json(data)
        return 0
    print(f"event {data['id']}  {data['type'] or '(no type)'}  [{data['status']}]")
    print(f"  source {data['source']}  webhook-id {data['webhook_id']}  received {data['received_at']}")
    if not data["deliveries"]:
        print("  unrouted: no enabled destination subscribes to this event type")
    for d in data["deliveries"]:
        print(f"\n  -> {d['destination']} (generation {d['generation']})  [{d['status']}]  job_id {d['job_id']}")
        if d["windmill_url"]:
            print(f"     Windmill: {d['windmill_url']}")
        job = d.get("job")
        if job:
            took = f" in {job['duration_ms'] / 1000:.2f} s" if job["duration_ms"] is not None else ""
            label = {"open": "running or queued (headrace is polling)", "unknown": "outcome unknown"}.get(
                job["state"], job["state"]
            )
            rerun = f" (re-run #{job['rerun_number']} after a failed job)" if job["rerun_number"] else ""
            print(f"     job: {label}{took}{rerun}")
            if job["excerpt"]:
                prefix = "error" if job["state"] == "failure" else "result"
                print(f"        {prefix}: " + job["excerpt"][:600].replace("\n", "\n        "))
        if d["status"] == "pending" and d["next_attempt_at"]:
            print(f"     next attempt at {d['next_attempt_at']}")
        for a in d["attempt_log"]:
            status = a["http_status"] if a["http_status"] is not None else "---"
            line = f"     #{a['number']} {a['started_at']}  HTTP {status}  {a['duration_ms']:>8.1f} ms  {a['outcome']}"
            print(line + (f": {a['detail']}" if a["detail"] else ""))
            if a.get("notes"):
                print(f"        note: {a['notes']}")
            if a["response_excerpt"] and a["outcome"] != "delivered":
                print(f"        response: {a['response_excerpt'][:300]}")
        if d["payload"] is not None:
            print("     transformed payload: " + json.dumps(d["payload"], ensure_ascii=False)[:1000])
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from headrace.durations import parse_since

    if args.failed:
        if not args.since or args.ids:
            raise UsageError("use either `replay ID...` or `replay --failed --since 24h`")
        try:
            since = parse_since(args.since, time.time())
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        results = _with_app(args, lambda app: app.replay_failed(since))
    else:
        if not args.ids:
            raise UsageError("name at least one event (id or webhook-id), or use --failed --since 24h")
        try:
            results = _with_app(args, lambda app: app.replay(args.ids))
        except LookupError as exc:
            raise UsageError(str(exc.args[0])) from None
    if args.json:
        print_json([{"event_id": r.event_id, "job_ids": r.job_ids} for r in results])
    else:
        total = sum(len(r.job_ids) for r in results)
        print(f"replayed {len(results)} event(s) as {total} new deliveries (new job ids); a running server sends them")
        for r in results:
            if not r.job_ids:
                print(f"  event {r.event_id}: no enabled destination matches it now")
    return 0


def cmd_rejections(args: argparse.Namespace) -> int:
    from headrace import views as serialize
    from headrace.durations import parse_since

    since = parse_since(args.since, time.time()) if args.since else None
    items = _with_app(args, lambda app: app.rejections(since, args.limit))
    rows = [serialize.rejection(i) for i in items]
    if args.json:
        print_json(rows)
        return 0
    if not rows:
        print("no rejections")
    for r in rows:
        print(f"{r['at']}  {r['status']}  {r['source']:12}  {r['reason']:28}  {r['remote']:15}  {r['detail']}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from headrace.app import make_sandbox, open_store
    from headrace.check import check, render_json

    settings = load(args.config)
    logs.setup("text", "warning")

    async def main() -> Any:
        path = settings.sqlite_path
        # Recent failed jobs come from the store; a SQLite file that does not exist yet has none.
        store = open_store(settings) if path is None or path.exists() else None
        if store is not None:
            await store.open(migrate=False)
        sandbox = make_sandbox(settings) if any(d.transform for d in settings.destinations.values()) else None
        try:
            return await check(settings, args.destinations, sandbox=sandbox, store=store, timeout=args.timeout)
        finally:
            if sandbox is not None:
                await sandbox.close()
            if store is not None:
                await store.close()

    try:
        report = _run(main())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(render_json(report) if args.json else report.table())
    return 0 if report.ok else 1


# ---- parser ------------------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="headrace",
        description="Dodo Payments webhooks into Windmill workflow runs: verified, durable, exactly once.",
    )
    parser.add_argument("--version", action="version", version=f"headrace {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    def with_config(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("-c", "--config", default=DEFAULT_CONFIG, help="config file (default: headrace.toml)")
        return p

    p = with_config(sub.add_parser("serve", help="accept webhooks and deliver them (the main process)"))
    p.set_defaults(func=cmd_serve)
    p = with_config(sub.add_parser("worker", help="deliver only, as a process of its own"))
    p.set_defaults(func=cmd_worker)
    p = with_config(sub.add_parser("init", help="write a commented starter config"))
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_init)

    p = with_config(sub.add_parser("check", help="diagnose destinations: reachable, token, deployed, schema fits"))
    p.add_argument("destinations", nargs="*", metavar="DESTINATION", help="destinations to check (default: all)")
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per network step (default 10)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_check)

    p = with_config(sub.add_parser("events", help="list events, newest first"))
    p.add_argument("--status", choices=EVENT_STATUSES, metavar="STATUS", help=f"one of {', '.join(EVENT_STATUSES)}")
    p.add_argument("--type", help='event type, exact or "prefix.*"')
    p.add_argument("--source", help="source name")
    p.add_argument("--since", help="2h (ago), ISO 8601 time or unix seconds")
    p.add_argument("--until", help="2h (ago), ISO 8601 time or unix seconds")
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_events)

    p = with_config(sub.add_parser("event", help="one event's whole timeline"))
    p.add_argument("id", help="event id or webhook-id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_event)

    p = with_config(sub.add_parser("replay", help="deliver events again under a new job id"))
    p.add_argument("ids", nargs="*", metavar="ID", help="event ids or webhook-ids")
    p.add_argument("--failed", action="store_true", help="replay every failed delivery (with --since)")
    p.add_argument("--since", help="with --failed: 24h (ago), ISO 8601 time or unix seconds")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_replay)

    p = with_config(sub.add_parser("rejections", help="refused webhooks (never their bodies)"))
    p.add_argument("--since", help="2h (ago), ISO 8601 time or unix seconds")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_rejections)

    cli_db.add_parsers(sub, "config file (default: headrace.toml)")

    p = sub.add_parser("send", help="sign and POST a sample Dodo event (like `stripe trigger`)")
    p.add_argument("event_type", metavar="EVENT_TYPE", help="e.g. payment.succeeded (see `headrace samples`)")
    p.add_argument("--to", required=True, help="ingest URL, e.g. http://127.0.0.1:8787/webhooks/dodo")
    p.add_argument("--secret", required=True, help="whsec_... or env:NAME")
    p.add_argument("--webhook-id", help="webhook-id header (default: a new random one)")
    p.add_argument("--data", help="send this JSON file instead of the bundled sample")
    p.set_defaults(func=cmd_send)

    p = sub.add_parser("transform", help="run a transformation on one event and print the result")
    p.add_argument("--script", required=True, help="builtin:NAME or a .js file")
    p.add_argument("--event", required=True, help="a Dodo webhook body (JSON file) or a sample event type")
    p.add_argument("--variant", help="with a sample event type: one of its variants (`headrace samples list TYPE`)")
    p.add_argument(
        "--url",
        default="https://windmill.example/api/w/acme/jobs/run/f/f/dodo/on_event",
        help="the destination URL the handler sees",
    )
    p.add_argument("--webhook-id", default="msg_sample", help="the webhook id the handler sees")
    p.add_argument(
        "--request",
        action="store_true",
        help="print the HTTP request a delivery would send (method, URL, headers, body; the token as ***)",
    )
    p.add_argument(
        "--job-id",
        default="00000000-0000-0000-0000-000000000000",
        help="the job id to show in the --request URL (a delivery's is derived from its event and destination)",
    )
    p.set_defaults(func=cmd_transform)

    p = sub.add_parser("samples", help="list the bundled sample events and their variants, or show one")
    p.add_argument("action", nargs="?", choices=["list", "show"], default="list")
    p.add_argument("type", nargs="?", help="event type: `list TYPE` lists its variants, `show TYPE` prints it")
    p.add_argument("--variant", help="with `show`: print this variant of the sample (e.g. zero_decimal_jpy)")
    p.set_defaults(func=cmd_samples)

    dev = sub.add_parser("dev", help="local development helpers").add_subparsers(
        dest="dev", metavar="TOOL", required=True
    )
    p = dev.add_parser(
        "windmill",
        help="run the Windmill emulator (a stand-in for tests and demos)",
        description=DEV_WINDMILL_DESCRIPTION,
    )
    add_dev_windmill_options(p)
    p.set_defaults(func=cmd_dev_windmill)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "dev", None) == "windmill" and args.token is None:
        args.token = ["dev-token"]
    try:
        code: int = args.func(args)
        return code
    except (ConfigError, UsageError, StoreError) as exc:
        print(f"headrace: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
