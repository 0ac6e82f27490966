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

from headrace.cli_shared import UsageError, new_event_loop, print_json


def cmd_send(args: argparse.Namespace) -> int:
    from headrace.config import resolve_reference
    from headrace.ingest.signature import decode_secret, sign

    try:
        key = decode_secret(resolve_reference(args.secret))
    except ValueError as exc:
        raise UsageError(f"--secret: {exc}") from None
    if args.data:
        body = Path(args.data).read_bytes()
    else:
        from headrace import samples

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


def cmd_dev_windmill(args: argparse.Namespace) -> int:
    from aiohttp import web

    from headrace.windmill.emulator import BANNER, EmulatorState, build_app

    host, _, port = args.listen.rpartition(":")
    state = EmulatorState(tokens=set(args.token), any_path=not args.strict)
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
    for spec in args.resource:
        path, sep, file = spec.partition("=")
        if not sep:
            raise UsageError(f"--resource {spec!r}: write PATH=FILE.json, e.g. f/dodo/db=db.json")
        try:
            state.resources[path] = json.loads(Path(file).read_text("utf-8"))
        except (OSError, ValueError) as exc:
            raise UsageError(f"--resource {spec}: {exc}") from None
    print(BANNER, flush=True)
    print(f"listening on http://{host}:{port}/api  (tokens: {len(state.tokens)} configured)", flush=True)
    web.run_app(build_app(state), host=host, port=int(port), print=None, access_log=None, loop=new_event_loop())
    return 0


def cmd_transform(args: argparse.Namespace) -> int:
    from headrace import samples
    from headrace.app import make_sandbox
    from headrace.transform import TransformError, WebhookObject
    from headrace.transform.scripts import load_script

    try:
        script = load_script(args.script, Path.cwd())
    except ValueError as exc:
        raise UsageError(f"--script: {exc}") from None
    event_path = Path(args.event)
    if event_path.is_file():
        try:
            body = json.loads(event_path.read_text("utf-8"))
        except ValueError as exc:
            raise UsageError(f"--event {args.event}: not JSON ({exc})") from None
    else:
        try:
            body = samples.load(args.event)
        except ValueError as exc:
            raise UsageError(f"--event: no such file, and {exc}") from None
    if not isinstance(body, dict):
        raise UsageError(f"--event {args.event}: a Dodo webhook body is a JSON object")
    webhook = WebhookObject(
        event_type=str(body.get("type", "")),
        payload=body,
        url=args.url,
        webhook_id=args.webhook_id,
    )
    try:
        result = asyncio.run(make_sandbox().transform(script, webhook))
    except TransformError as exc:
        print(f"transformation {script.name} failed: {exc}", file=sys.stderr)
        return 1
    print_json(result.to_json())
    return 0


def cmd_samples(args: argparse.Namespace) -> int:
    from headrace import samples

    if args.action == "show":
        if not args.type:
            raise UsageError("samples show TYPE (e.g. payment.succeeded); `headrace samples` lists them")
        try:
            print_json(samples.load(args.type))
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return 0
    for name in samples.EVENT_TYPES:
        print(name)
    return 0
