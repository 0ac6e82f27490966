"""`headrace dev dodo` (the Dodo API stand-in, and `emit` to make it send a signed webhook) and
`headrace connect dodo` (register headrace's endpoint in Dodo and write its secret beside the config).
Leaf of the CLI: `cli.py` wires these into the parser."""

from __future__ import annotations

import argparse
import json
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from headrace.cli.shared import UsageError, new_event_loop
from headrace.policy import ERROR_EXCERPT

if TYPE_CHECKING:
    from headrace.config import Settings

DEV_DODO_PORT = 8100
DEV_DODO_URL = f"http://127.0.0.1:{DEV_DODO_PORT}"

DEV_DODO_DESCRIPTION = f"""\
A Dodo Payments API stand-in for tests and demos -- not Dodo. It answers Dodo's webhook-endpoint routes
and lists payments, refunds, disputes, subscriptions, license keys and payouts, as the dodopayments SDK
models them. Point headrace at it with DODO_PAYMENTS_BASE_URL=http://HOST:PORT and the API key
dev-dodo-key (or one given with --api-key). `headrace dev dodo emit TYPE` makes it send a signed webhook
of that type to every registered endpoint subscribed to it (default --url {DEV_DODO_URL})."""


def add_dev_dodo_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--listen", default=f"127.0.0.1:{DEV_DODO_PORT}", help="HOST:PORT (default %(default)s)")
    p.add_argument(
        "--api-key", action="append", default=None, help="accepted API key (repeatable; default dev-dodo-key)"
    )
    p.add_argument(
        "--page-number-cap",
        type=int,
        metavar="N",
        help="refuse GET /payments with a page_number above N (Dodo caps deep pagination); default: no cap",
    )
    p.set_defaults(func=cmd_dev_dodo)
    actions = p.add_subparsers(dest="dodo_action", metavar="ACTION")
    emit = actions.add_parser("emit", help="make a running stand-in send a signed webhook")
    emit.add_argument("event_type", metavar="EVENT_TYPE", help="one of the 48 types (see `headrace samples`)")
    emit.add_argument("--url", default=DEV_DODO_URL, help="the stand-in's base URL (default %(default)s)")
    emit.add_argument("--object-id", help="about this stored object (default: a new one from the sample)")
    emit.set_defaults(func=cmd_dev_dodo_emit)
    seed = actions.add_parser("seed", help="store objects in a running stand-in, with no webhook (for reconcile)")
    seed.add_argument("kind", metavar="KIND", help="payments, refunds, disputes, subscriptions, license_keys, payouts")
    seed.add_argument("--count", type=int, default=1, help=f"how many (1 to {SEED_MAX}, default 1)")
    seed.add_argument("--created-at", metavar="TIME", help="RFC 3339 creation time (default now)")
    seed.add_argument("--event-type", help="start from this type's sample, e.g. payment.failed (default the kind's)")
    seed.add_argument("--set", action="append", default=[], metavar="KEY=JSON", help="a field's value (repeatable)")
    seed.add_argument("--url", default=DEV_DODO_URL, help="the stand-in's base URL (default %(default)s)")
    seed.set_defaults(func=cmd_dev_dodo_seed)


def cmd_dev_dodo(args: argparse.Namespace) -> int:
    from aiohttp import web

    from headrace.dodo.standin import BANNER, DEFAULT_API_KEY, StandinState, build_app

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UsageError(f"--listen {args.listen!r}: write HOST:PORT, e.g. 127.0.0.1:{DEV_DODO_PORT}")
    if args.page_number_cap is not None and args.page_number_cap < 0:
        raise UsageError("--page-number-cap: give 0 or more")
    keys = set(args.api_key or [DEFAULT_API_KEY])
    if any(not key for key in keys):
        raise UsageError("--api-key: an API key is not empty")
    state = StandinState(keys, page_number_cap=args.page_number_cap)
    print(BANNER, flush=True)
    print(f"listening on http://{host}:{port}  (API keys: {len(keys)} configured)", flush=True)
    print(f"use it with: export DODO_PAYMENTS_BASE_URL=http://{host}:{port}", flush=True)
    web.run_app(build_app(state), host=host, port=int(port), print=None, access_log=None, loop=new_event_loop())
    return 0


def _control(url: str, path: str, body: dict[str, Any]) -> Any:
    """POST `body` to the running stand-in's control endpoint `path`; its JSON answer, or a UsageError."""
    if not url.startswith(("http://", "https://")):
        raise UsageError(f"--url {url!r}: the stand-in's base URL, e.g. {DEV_DODO_URL}")
    request = urllib.request.Request(  # noqa: S310 (scheme checked above)
        url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return json.loads(response.read())
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:ERROR_EXCERPT]
        raise UsageError(f"the stand-in at {url} refused: HTTP {exc.code} {detail}") from None
    except urllib.error.URLError as exc:
        raise UsageError(f"cannot reach the stand-in at {url} ({exc.reason}); start it: headrace dev dodo") from None


def cmd_dev_dodo_emit(args: argparse.Namespace) -> int:
    from headrace.dodo import samples

    if args.event_type not in samples.EVENT_TYPES:
        try:
            samples.path(args.event_type)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    answer = _control(args.url, "/_standin/emit", {"type": args.event_type, "object_id": args.object_id})
    deliveries = answer.get("deliveries", [])
    if not deliveries:
        print(f"{args.event_type}: no enabled endpoint is subscribed to it (register one: headrace connect dodo)")
        return 1
    ok = True
    for d in deliveries:
        outcome = f"HTTP {d['status']}" if d["status"] is not None else d["error"]
        print(f"{d['event_type']} webhook-id {d['webhook_id']} -> {d['url']}: {outcome}")
        ok = ok and d["status"] is not None and 200 <= d["status"] < 300
    return 0 if ok else 1


SEED_MAX = 1000  # objects one `seed` makes


def cmd_dev_dodo_seed(args: argparse.Namespace) -> int:
    """Store objects in a running stand-in without sending a webhook: what Dodo holds while headrace was down."""
    from headrace.dodo.kinds import KINDS

    if args.kind not in KINDS:
        raise UsageError(f"{args.kind!r}: one of {', '.join(KINDS)}")
    if not 1 <= args.count <= SEED_MAX:
        raise UsageError(f"--count {args.count}: between 1 and {SEED_MAX}")
    fields: dict[str, Any] = {}
    for spec in args.set:
        key, sep, value = spec.partition("=")
        if not sep or not key:
            raise UsageError(f'--set {spec!r}: write KEY=JSON, e.g. status="failed" or total_amount=1500')
        try:
            fields[key] = json.loads(value)
        except ValueError:
            fields[key] = value  # a bare word is a string: status=failed
    if args.created_at:
        fields["created_at"] = args.created_at
    path = f"/_standin/objects/{args.kind}" + (f"?event_type={quote(args.event_type)}" if args.event_type else "")
    for _ in range(args.count):
        record = _control(args.url, path, fields)
        print(f"{args.kind} {record[KINDS[args.kind].id_field]} created_at {record['created_at']}")
    return 0


# ---- connect dodo --------------------------------------------------------------------------------------

SECRET_FILE_MODE = 0o600
SECRET_FILES_MAX = 100  # {source}-webhook-secret, -2, ... -100: one per rotation


def add_connect_dodo_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--public-url",
        required=True,
        metavar="URL",
        help="where Dodo reaches headrace's ingest, e.g. https://hooks.example.com/webhooks/dodo",
    )
    p.add_argument(
        "--api-key",
        required=True,
        metavar="REF",
        help="Dodo's API key as env:NAME or file:PATH (e.g. env:DODO_PAYMENTS_API_KEY); stored as given, "
        "never its value",
    )
    p.add_argument(
        "--mode",
        choices=["test", "live"],
        help="the API key's mode (default: the source's `mode`, else live); DODO_PAYMENTS_BASE_URL overrides "
        "the address",
    )
    p.add_argument("--source", default="dodo", help="the [sources.NAME] Dodo sends to (default dodo)")
    p.add_argument(
        "--refresh-secret",
        action="store_true",
        help="after rotating the endpoint's secret in Dodo's dashboard: add the new one (old ones stay)",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would change, change nothing")
    p.set_defaults(func=cmd_connect_dodo)


def say(line: str) -> None:
    print(line, flush=True)


def cmd_connect_dodo(args: argparse.Namespace) -> int:
    from headrace.cli.shared import run
    from headrace.config import load
    from headrace.config.sources import check_api_key_reference, dodo_access
    from headrace.dodo.api import DodoApiError, base_url
    from headrace.dodo.connect import check_public_url, plain_http_elsewhere
    from headrace.dodo.endpoint_state import routed_types

    config_path = Path(args.config)
    settings = load(config_path)
    problem = check_public_url(args.public_url)
    if problem:
        raise UsageError(f"--public-url: {problem}")
    try:
        check_api_key_reference(args.api_key)
    except ValueError as exc:
        raise UsageError(f"--api-key: {exc}") from None
    source = settings.sources.get(args.source)
    mode = args.mode or (source.mode if source is not None else "live")
    filter_types = routed_types(settings, args.source)
    if not filter_types:
        raise UsageError(
            f"no enabled destination takes events from source {args.source!r} in {config_path}: "
            f"run `headrace connect windmill` first, or add a [destinations.NAME] with source = {args.source!r}"
        )
    try:
        access = dodo_access(args.api_key, mode, settings.base_dir)
        base = base_url(mode, access.base_override)
    except ValueError as exc:
        raise UsageError(f"--api-key {args.api_key}: {exc}") from None
    if not args.public_url.rstrip("/").endswith(f"/webhooks/{args.source}"):
        say(
            f"note: headrace's ingest path for source {args.source!r} is /webhooks/{args.source}; "
            f"{args.public_url} ends otherwise (fine if a proxy rewrites it)"
        )
    if plain_http_elsewhere(args.public_url):
        say("note: Dodo sends webhooks over https; a plain http:// URL off this machine is readable on the way")
    say(f"Dodo {mode} mode, {base}; endpoint {args.public_url}; {len(filter_types)} event types")
    try:
        return run(_connect_dodo(args, settings, config_path, base, access.api_key.reveal(), mode, filter_types))
    except DodoApiError as exc:
        raise UsageError(f"Dodo's API: {exc}") from None


async def _connect_dodo(
    args: argparse.Namespace,
    settings: Settings,
    config_path: Path,
    base: str,
    key: str,
    mode: str,
    filter_types: list[str],
) -> int:
    from headrace.dodo.api import open_client
    from headrace.dodo.connect import ensure_endpoint

    async with open_client(base, key, on_wait=lambda s: say(f"Dodo's rate limit: waiting {s:g}s")) as client:
        _, endpoint = await ensure_endpoint(
            client,
            url=args.public_url,
            source=args.source,
            mode=mode,
            filter_types=filter_types,
            dry_run=args.dry_run,
            say=say,
        )
        secret = None if endpoint is None else await client.webhook_secret(endpoint.id)
    return _write_config(args, settings, config_path, mode, secret)


def _write_config(
    args: argparse.Namespace, settings: Settings, config_path: Path, mode: str, secret: str | None
) -> int:
    """Append the signing secret (as a file: reference to a 0600 file beside the config) and set api_key and
    mode on the source; the config keeps its comments, and is checked before it replaces the old one."""
    from headrace.config import ConfigError, parse
    from headrace.config.edit import ConfigFile

    source = args.source
    config = ConfigFile.load(config_path)
    raw = config.source(source) or {}
    configured = settings.sources[source].secrets if source in settings.sources else ()
    code = 0
    new_file: Path | None = None
    if secret is None:
        say(
            f"would fetch the endpoint's signing secret into a file beside {config_path} and add it to "
            f"[sources.{source}] secrets"
        )
    elif any(s.reveal() == secret for s in configured):
        say(f"signing secret: already in [sources.{source}] secrets")
    elif _has_own_secret(raw, source) and not args.refresh_secret:
        say(
            f"the endpoint's signing secret is not in [sources.{source}] secrets (rotated in Dodo's dashboard?): "
            f"run this again with --refresh-secret to add it; the old ones stay"
        )
        code = 1
    elif args.dry_run:
        say(
            f"would write the endpoint's signing secret to a 0600 file beside {config_path} and add it to "
            f"[sources.{source}] secrets"
        )
    else:
        new_file = _write_secret_file(settings.base_dir, source, secret)
        config.append_source_secret(source, f"file:{new_file.name}")
        say(f"signing secret: written to {new_file} (mode 600), added to [sources.{source}] secrets")
    keys = {"api_key": args.api_key, "mode": mode}
    changed = {k: v for k, v in keys.items() if raw.get(k) != v}
    if changed and not args.dry_run:
        config.set_source_keys(source, changed)
    if changed:
        settings_text = ", ".join(f"{k} = {v!r}" for k, v in changed.items())
        say(f"[sources.{source}]: {'would set' if args.dry_run else 'set'} {settings_text}")
    if args.dry_run or (new_file is None and not changed):
        if not args.dry_run and code == 0:
            say(f"{config_path}: up to date")
        return code
    try:
        parse(config.text(), origin=str(config_path), base_dir=settings.base_dir)
    except ConfigError as exc:
        if new_file is not None:
            new_file.unlink(missing_ok=True)
        raise ConfigError(f"the edited config would not load, so it was not written: {exc}") from None
    try:
        config.save()
    except ConfigError:
        if new_file is not None:  # not referenced by any config: the next run fetches the secret again
            new_file.unlink(missing_ok=True)
        raise
    say(f"wrote {config_path}")
    return code


def _has_own_secret(raw: dict[str, Any], source: str) -> bool:
    """True when the source already lists a secret file connect wrote (so a new secret means a rotation)."""
    secrets = raw.get("secrets")
    return isinstance(secrets, list) and any(
        isinstance(s, str) and s.startswith(f"file:{source}-webhook-secret") for s in secrets
    )


def _write_secret_file(folder: Path, source: str, secret: str) -> Path:
    """A new 0600 file `{source}-webhook-secret[-N]` in `folder` holding `secret`: never an existing file."""
    for n in range(1, SECRET_FILES_MAX + 1):
        path = folder / (f"{source}-webhook-secret" + ("" if n == 1 else f"-{n}"))
        try:
            handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SECRET_FILE_MODE)
        except FileExistsError:
            continue
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            stream.write(secret + "\n")
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(path, SECRET_FILE_MODE)  # whatever the umask
        return path
    raise UsageError(f"{folder}: {SECRET_FILES_MAX} secret files for {source} already; remove the old ones")


def add_parsers(
    connect: argparse._SubParsersAction[argparse.ArgumentParser],
    dev: argparse._SubParsersAction[argparse.ArgumentParser],
    config_help: str,
) -> None:
    p = connect.add_parser(
        "dodo",
        help="register headrace's webhook endpoint in Dodo and write its signing secret beside the config",
        description="Find headrace's endpoint among all of Dodo's (every page), create it when missing, change "
        "only what differs (re-enable a disabled one), fetch its signing secret into a 0600 file beside the "
        "config and add it to [sources.NAME] secrets; store the API key's reference and the mode on the source. "
        "Idempotent: a second run changes nothing.",
    )
    p.add_argument("-c", "--config", default="headrace.toml", help=config_help)
    add_connect_dodo_options(p)
    p = dev.add_parser("dodo", help="run the Dodo API stand-in (for tests and demos)", description=DEV_DODO_DESCRIPTION)
    add_dev_dodo_options(p)
