"""The `headrace` command. Thin: parse arguments -> settings -> app -> one call."""

from __future__ import annotations

import argparse
import gc
import os
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

from headrace import __version__
from headrace.cli import connect as cli_connect
from headrace.cli import db as cli_db
from headrace.cli import dodo as cli_dodo
from headrace.cli import reconcile as cli_reconcile
from headrace.cli.format import event_table, event_timeline, rejection_table, replay_summary
from headrace.cli.shared import UsageError, print_json, run, since_option
from headrace.cli.tools import (
    DEV_WINDMILL_DESCRIPTION,
    add_dev_windmill_options,
    cmd_dev_windmill,
    cmd_samples,
    cmd_send,
    cmd_transform,
)
from headrace.config import ConfigError, Settings, load
from headrace.models import EVENT_STATUSES, ORIGINS, no_event
from headrace.observe import logs
from headrace.store.base import StoreError

T = TypeVar("T")
DEFAULT_CONFIG = "headrace.toml"


def _show(args: argparse.Namespace, data: Any, lines: Callable[[Any], list[str]]) -> int:
    """Print `data` as JSON with --json, else as the lines the formatter makes of it."""
    if args.json:
        print_json(data)
    else:
        print("\n".join(lines(data)))
    return 0


def _settings(args: argparse.Namespace) -> Settings:
    settings = load(args.config)
    logs.setup(settings.server.log_format, settings.server.log_level)
    return settings


# ---- commands ----------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    from headrace.server import serve

    settings = _settings(args)
    pid_file = Path(args.pid_file) if args.pid_file else settings.pid_path
    run(serve(settings, config_path=Path(args.config), pid_file=pid_file, ready=keep_started))
    return 0


def keep_started(port: int) -> None:
    """Once `serve` listens: what it has built so far (modules, settings, the application, the store) lives
    as long as the process, so it is moved out of the garbage collector's sight (gc.freeze). Otherwise each
    full collection, which ingest's garbage brings every few thousand requests, walks all of it: a pause of
    tens of milliseconds each (ingest's p99 under load went from ~60 ms to ~21 ms, its CPU per event -10 %)."""
    gc.freeze()


def cmd_worker(args: argparse.Namespace) -> int:
    from headrace.server import run_worker

    pid_file = Path(args.pid_file) if args.pid_file else None
    run(run_worker(_settings(args), config_path=Path(args.config), pid_file=pid_file))
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from headrace.config.starter import render

    path = Path(args.config)
    if path.exists() and not args.force:
        raise UsageError(f"{path} already exists; pass --force to overwrite it")
    path.write_text(render(), encoding="utf-8")
    path.chmod(0o600)
    print(f"wrote {path} (mode 600: it holds a signing secret and the admin token). Next: headrace serve -c {path}")
    return 0


def _with_app(args: argparse.Namespace, action: Callable[[Any], Awaitable[T]]) -> T:
    from headrace.app import App

    settings = load(args.config, need_secrets=False)  # the database is all these commands need
    logs.setup("text", "warning")

    async def main() -> T:
        app = await App.open(settings, migrate=False)  # only serve, worker and `db migrate` change the schema
        try:
            return await action(app)
        finally:
            await app.close()

    return run(main())


def cmd_events(args: argparse.Namespace) -> int:
    from headrace import views as serialize
    from headrace.views import event_filter

    query = {
        k: v
        for k, v in {
            "status": args.status,
            "type": args.type,
            "source": args.source,
            "origin": args.origin,
            "since": args.since,
            "until": args.until,
            "limit": str(args.limit),
            "q": args.query,
            "before": None if args.before is None else str(args.before),
        }.items()
        if v
    }
    now = time.time()
    for option, value in (("--since", args.since), ("--until", args.until)):
        if value:
            since_option(option, value, now)  # the same error as every other command's time option
    try:
        flt = event_filter(query, now)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    events = _with_app(args, lambda app: app.store.list_events(flt))
    return _show(args, [serialize.event_summary(e) for e in events], event_table)


def cmd_event(args: argparse.Namespace) -> int:
    from headrace import views as serialize

    async def detail(app: Any) -> Any:
        event = await app.store.get_event(args.id)
        return None if event is None else serialize.event_detail(event, app.settings)

    data = _with_app(args, detail)
    if data is None:
        raise UsageError(no_event(args.id))
    return _show(args, data, event_timeline)


def cmd_replay(args: argparse.Namespace) -> int:
    if args.failed:
        if not args.since or args.ids:
            raise UsageError("use either `replay ID...` or `replay --failed --since 24h`")
        since = since_option("--since", args.since, time.time())
        results = _with_app(args, lambda app: app.replays.failed(since))
    else:
        if not args.ids:
            raise UsageError("name at least one event (id or webhook-id), or use --failed --since 24h")
        try:
            results = _with_app(args, lambda app: app.replays.replay(args.ids))
        except LookupError as exc:
            raise UsageError(str(exc.args[0])) from None
    return _show(args, [{"event_id": r.event_id, "job_ids": r.job_ids} for r in results], replay_summary)


def cmd_rejections(args: argparse.Namespace) -> int:
    from headrace import views as serialize

    since = since_option("--since", args.since, time.time()) if args.since else None
    items = _with_app(args, lambda app: app.store.list_rejections(since, args.limit))
    return _show(args, [serialize.rejection(i) for i in items], rejection_table)


def cmd_check(args: argparse.Namespace) -> int:
    from headrace.app import make_sandbox, open_store
    from headrace.check import check, render_json

    if args.config_only:
        return _check_config(args.config)
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
        report = run(main())
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    print(render_json(report) if args.json else report.table())
    return 0 if report.ok else 1


def _check_config(path: str) -> int:
    """`check --config-only`: the file loads and validates (transformations included); no network, no store,
    and the secrets only when they are there (CI, `ExecReload=` before the SIGHUP)."""
    from headrace.app import load_scripts
    from headrace.config.loader import unresolved_references

    settings = load(path, need_secrets=False)
    load_scripts(settings)  # every .js transformation: there, readable, and a module with a default export
    print(
        f"{path}: valid ({len(settings.sources)} source(s), {len(settings.destinations)} destination(s), "
        f"database {settings.server.database.partition('://')[0]})"
    )
    missing = unresolved_references(settings)
    if missing:
        print("not checked, not set here: " + ", ".join(missing))
    return 0


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
    p.add_argument(
        "--pid-file",
        metavar="FILE",
        help="write the process id here (for kill -HUP $(cat FILE), which reloads the config); "
        "default: [server] pid_file",
    )
    p.set_defaults(func=cmd_serve)
    p = with_config(sub.add_parser("worker", help="deliver only, as a process of its own"))
    p.add_argument("--pid-file", metavar="FILE", help="write the process id here (for kill -HUP $(cat FILE))")
    p.set_defaults(func=cmd_worker)
    p = with_config(sub.add_parser("init", help="write a commented starter config"))
    p.add_argument("--force", action="store_true", help="overwrite an existing file")
    p.set_defaults(func=cmd_init)

    p = with_config(sub.add_parser("check", help="diagnose destinations: reachable, token, deployed, schema fits"))
    p.add_argument("destinations", nargs="*", metavar="DESTINATION", help="destinations to check (default: all)")
    p.add_argument(
        "--config-only",
        action="store_true",
        help="only load and validate the config: no network, no database, secrets checked only where set "
        "(for CI and ExecReload)",
    )
    p.add_argument("--timeout", type=float, default=10.0, help="seconds per network step (default 10)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_check)

    p = with_config(sub.add_parser("events", help="list events, newest first"))
    p.add_argument("--status", choices=EVENT_STATUSES, metavar="STATUS", help=f"one of {', '.join(EVENT_STATUSES)}")
    p.add_argument("--type", help='event type, exact or "prefix.*"')
    p.add_argument("--source", help="source name")
    p.add_argument("--origin", choices=ORIGINS, help="dodo (webhooks received) or reconcile (synthesized)")
    p.add_argument("--since", help="2h (ago), RFC 3339 time (2026-11-26T10:00:00Z), date or unix seconds")
    p.add_argument("--until", help="2h (ago), RFC 3339 time (2026-11-26T10:00:00Z), date or unix seconds")
    p.add_argument(
        "-q",
        "--query",
        help="payload search: an id (pay_…, sub_…, cus_…, a prefix of 3+ characters is enough), an email, or words; "
        'all must match; "quotes" for a phrase',
    )
    p.add_argument("--limit", type=int, default=50, help="at most this many (default 50)")
    p.add_argument("--before", type=int, metavar="ID", help="only events with a smaller id (the next page)")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_events)

    p = with_config(sub.add_parser("event", help="one event's whole timeline"))
    p.add_argument("id", help="event id or webhook-id")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_event)

    p = with_config(sub.add_parser("replay", help="deliver events again under a new job id"))
    p.add_argument("ids", nargs="*", metavar="ID", help="event ids or webhook-ids")
    p.add_argument("--failed", action="store_true", help="replay every failed delivery (with --since)")
    p.add_argument("--since", help="with --failed: 24h (ago), RFC 3339 time, date or unix seconds")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_replay)

    p = with_config(sub.add_parser("rejections", help="refused webhooks (never their bodies)"))
    p.add_argument("--since", help="2h (ago), RFC 3339 time (2026-11-26T10:00:00Z), date or unix seconds")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=cmd_rejections)

    cli_db.add_parsers(sub, "config file (default: headrace.toml)")
    connect = cli_connect.add_parsers(sub, "config file (default: headrace.toml)")
    cli_reconcile.add_parser(sub, "config file (default: headrace.toml)")

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
    cli_dodo.add_parsers(connect, dev, "config file (default: headrace.toml)")
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
    except BrokenPipeError:  # `headrace events | head`: the reader has gone; stop quietly, as cat would
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush at exit
        return 141  # 128 + SIGPIPE, the shell's status for it
