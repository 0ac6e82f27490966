"""`headrace` commands for trying things locally: send a signed sample, run a transformation, list the
bundled samples, run the Windmill emulator. Leaf of the CLI: `cli.py` wires these into the parser."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

from headrace.cli.shared import UsageError, new_event_loop, print_json


def cmd_send(args: argparse.Namespace) -> int:
    from headrace.config import resolve_reference
    from headrace.config.secret import decode_secret
    from headrace.dodo.signature import sign

    try:
        key = decode_secret(resolve_reference(args.secret))
    except ValueError as exc:
        raise UsageError(f"--secret: {exc}") from None
    if args.data:
        body = Path(args.data).read_bytes()
    else:
        from headrace.dodo import samples

        try:
            event = samples.load(args.event_type)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        event["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        body = json.dumps(event).encode()
    webhook_id = args.webhook_id or f"msg_{uuid.uuid4().hex[:24]}"
    timestamp = int(time.time())
    if not args.to.startswith(("http://", "https://")):
        raise UsageError("--to: an http:// or https:// URL, e.g. http://127.0.0.1:8787/webhooks/dodo")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        args.to,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(key, webhook_id, timestamp, body),
        },
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310
            status, text = response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        status, text = exc.code, exc.read().decode()
    except urllib.error.URLError as exc:
        raise UsageError(f"cannot reach {args.to}: {exc.reason}") from None
    print(f"{args.event_type} webhook-id {webhook_id} -> HTTP {status} {text}")
    return 0 if 200 <= status < 300 else 1


DEV_WINDMILL_DESCRIPTION = """\
A Windmill stand-in for tests and demos -- not Windmill. It answers like Windmill (docs/windmill-contract.md):
a path that is not deployed is 404 for runs and for its schema alike. Deploy targets with --script, --flow
or --kit; with none of them, it deploys the flow of the starter config (`headrace init`),
f/dodo/on_payment, in every workspace, so `headrace init` + `headrace dev windmill` work out of the box.
--accept-any-path deploys any path on first use instead (no schema)."""


def add_dev_windmill_options(p: argparse.ArgumentParser) -> None:
    from headrace.windmill.emulator import TIMEOUT_WAIT_RESULT
    from headrace.windmill.emulator_model import AUTH_CACHE_SECONDS

    p.add_argument("--listen", default="127.0.0.1:8000")
    p.add_argument("--token", action="append", default=None, help="accepted token (repeatable; default dev-token)")
    p.add_argument("--script", action="append", default=[], help="deploy a script path, e.g. f/dodo/ledger")
    p.add_argument("--flow", action="append", default=[], help="deploy a flow path, e.g. f/dodo/on_payment")
    p.add_argument("--kit", help="a Windmill workspace folder (e.g. kit/): its Python scripts run as jobs")
    p.add_argument(
        "--accept-any-path",
        action="store_true",
        help="run any script or flow path (deployed on first use, no schema) instead of answering 404",
    )
    p.add_argument("--resource", action="append", default=[], help="PATH=FILE.json: a resource value (repeatable)")
    p.add_argument("--variable", action="append", default=[], help="PATH=VALUE: a variable for $var: (repeatable)")
    p.add_argument(
        "--lock-seconds",
        type=float,
        default=1.0,
        metavar="SECONDS",
        help="how long the lock of a script or flow deployed through the API takes to build; runs of a script "
        "answer 404 until then, as on Windmill (default 1)",
    )
    p.add_argument(
        "--auth-cache-seconds",
        type=float,
        default=AUTH_CACHE_SECONDS,
        metavar="SECONDS",
        help="how long an accepted token is taken from the cache, so a revoked one keeps working (Windmill's "
        f"auth cache, default {AUTH_CACHE_SECONDS:g}; 0 to make a revocation count at once)",
    )
    p.add_argument(
        "--wait-timeout",
        type=float,
        default=TIMEOUT_WAIT_RESULT,
        metavar="SECONDS",
        help=f"run_wait_result answers 500 and cancels the job after this long (Windmill's "
        f"TIMEOUT_WAIT_RESULT, default {TIMEOUT_WAIT_RESULT:g})",
    )


def cmd_dev_windmill(args: argparse.Namespace) -> int:
    from aiohttp import web

    from headrace.config.starter import EMULATOR_URL
    from headrace.windmill.emulator import BANNER, EmulatorState, build_app
    from headrace.windmill.emulator_deploy import DEPLOYMENT
    from headrace.windmill.urls import parse_run_url

    host, _, port = args.listen.rpartition(":")
    if not 0 < args.wait_timeout <= 86400:
        raise UsageError(f"--wait-timeout {args.wait_timeout:g}: give seconds between 0 and 86400")
    if not 0 <= args.auth_cache_seconds <= 3600:
        raise UsageError(f"--auth-cache-seconds {args.auth_cache_seconds:g}: give seconds between 0 and 3600")
    state = EmulatorState(
        tokens=set(args.token),
        any_path=args.accept_any_path,
        wait_timeout=args.wait_timeout,
        auth_cache_seconds=args.auth_cache_seconds,
    )
    for path in args.script:
        state.add_target("script", path)
    for path in args.flow:
        state.add_target("flow", path)
    if args.kit:
        from headrace.windmill.emulator_kit import load_kit

        try:
            loaded = load_kit(state, Path(args.kit))
        except (ValueError, RuntimeError) as exc:
            raise UsageError(f"--kit {args.kit}: {exc}") from None
        print(f"loaded {len(loaded)} scripts and flows from {args.kit}", flush=True)
    if not (args.script or args.flow or args.kit or args.accept_any_path):
        starter, _ = parse_run_url(EMULATOR_URL)
        state.add_target(starter.kind, starter.path)
        print(f"deployed the starter config's {starter.kind} {starter.path} (give --script/--flow/--kit for others)")
    for spec in args.resource:
        path, sep, file = spec.partition("=")
        if not sep:
            raise UsageError(f"--resource {spec!r}: write PATH=FILE.json, e.g. f/dodo/db=db.json")
        try:
            state.resources[path] = json.loads(Path(file).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"--resource {spec}: {exc}") from None
    for spec in args.variable:
        path, sep, value = spec.partition("=")
        if not sep or not path:
            raise UsageError(f"--variable {spec.partition('=')[0]!r}: write PATH=VALUE, e.g. f/dodo/api_key=...")
        state.variables[path] = value
    if not 0 <= args.lock_seconds <= 3600:
        raise UsageError(f"--lock-seconds {args.lock_seconds:g}: give seconds between 0 and 3600")
    app = build_app(state)
    app[DEPLOYMENT].lock_seconds = args.lock_seconds
    print(BANNER, flush=True)
    print(f"listening on http://{host}:{port}/api  (tokens: {len(state.tokens)} configured)", flush=True)
    web.run_app(app, host=host, port=int(port), print=None, access_log=None, loop=new_event_loop())
    return 0


def cmd_transform(args: argparse.Namespace) -> int:
    """Run a transformation through the same function as a delivery (deliver/request.py), so what it prints
    is what would be sent, and what delivery refuses it refuses."""
    from headrace.app import make_sandbox
    from headrace.deliver.request import Refused, Request, Skipped, build_request
    from headrace.dodo import samples
    from headrace.transform.scripts import load_script
    from headrace.windmill.urls import WindmillUrlError, parse_run_url

    try:
        script = load_script(args.script, Path.cwd())
    except ValueError as exc:
        raise UsageError(f"--script: {exc}") from None
    try:
        target, _ = parse_run_url(args.url)
    except WindmillUrlError as exc:
        raise UsageError(f"--url: {exc}") from None
    event_path = Path(args.event)
    if event_path.is_file():
        if args.variant:
            raise UsageError(f"--variant: {args.event} is a file; variants belong to sample event types")
        raw = event_path.read_bytes()
        try:
            body = json.loads(raw)
        except ValueError as exc:
            raise UsageError(f"--event {args.event}: not JSON ({exc})") from None
    else:
        try:
            body = samples.load(args.event, args.variant)
        except ValueError as exc:
            raise UsageError(f"--event: no such file, and {exc}") from None
        raw = json.dumps(body).encode()
    if not isinstance(body, dict):
        raise UsageError(f"--event {args.event}: a Dodo webhook body is a JSON object")
    event_type = str(body.get("type", ""))

    async def run() -> Request | Refused | Skipped:
        sandbox = make_sandbox()
        try:
            return await build_request(target, event_type, raw, args.webhook_id, script, sandbox)
        finally:
            await sandbox.close()

    built = asyncio.run(run())
    if isinstance(built, Refused):
        print(built.reason, file=sys.stderr)
        return 1
    if isinstance(built, Skipped):
        print_json(built.webhook.to_json())
        return 0
    for note in built.notes:
        print(f"note: {note}", file=sys.stderr)
    if args.request:
        sys.stdout.buffer.write(built.preview(args.job_id) + b"\n")
        return 0
    print_json(
        {
            "eventType": event_type,
            "payload": json.loads(built.body),
            "url": built.url,
            "method": built.method,
            "headers": dict(built.headers),
            "cancel": False,
        }
    )
    return 0


def cmd_samples(args: argparse.Namespace) -> int:
    from headrace.dodo import samples

    try:
        if args.action == "show":
            if not args.type:
                raise UsageError("samples show TYPE (e.g. payment.succeeded); `headrace samples` lists them")
            print_json(samples.load(args.type, args.variant))
        elif args.variant:
            raise UsageError("--variant goes with `samples show TYPE`; `samples list TYPE` lists the variants")
        elif args.type:
            for name in samples.variants(args.type):
                print(f"{name:<24} {samples.describe(args.type, name)}")
        else:
            for name in samples.EVENT_TYPES:
                print(name)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    return 0
