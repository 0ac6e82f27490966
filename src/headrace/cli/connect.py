"""`headrace connect ...`: wire headrace to the systems around it with idempotent commands.

`connect windmill` deploys the kit into a workspace (windmill/deploy.py), optionally creates the kit's tables,
and writes the destinations into the config (config/edit.py), keeping its comments. Secrets stay references:
the token is written as the `env:`/`file:` reference given, never its value.
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from headrace.cli.shared import UsageError, run
from headrace.config import ConfigError, parse, resolve_reference
from headrace.config.edit import ConfigFile
from headrace.config.starter import EMULATOR_URL

if TYPE_CHECKING:
    from headrace.windmill.deploy_resources import ResourceCheck
    from headrace.windmill.kit import KitDestination

REQUEST_TIMEOUT = 60.0  # seconds for one request to Windmill


def add_parsers(sub: Any, config_help: str) -> Any:
    """The `connect` group with its `windmill` command; returns the group so others can add theirs."""
    from headrace.windmill.deploy import LOCK_TIMEOUT

    connect = sub.add_parser("connect", help="wire headrace to Windmill or Dodo (idempotent)").add_subparsers(
        dest="connect_command", metavar="SYSTEM", required=True
    )
    p = connect.add_parser(
        "windmill",
        help="deploy the kit into a Windmill workspace and write the destinations into the config",
        description="Deploy the kit (f/dodo: scripts, flows, schedule) through Windmill's API, in the order "
        "`wmill sync push` uses, waiting for every lock; never deletes, never overwrites a variable, resource, "
        "script, flow or schedule headrace did not create; a second run changes nothing. Then write one "
        "destination per kit automation "
        "into the config, keeping its comments. Last, list the resources the kit reads (f/FOLDER/slack, smtp, ...) "
        "that the workspace lacks, with the automations that read each and how to create it: headrace never "
        "creates or changes them (their values are your secrets), except f/FOLDER/db with --database.",
    )
    p.add_argument("-c", "--config", default="headrace.toml", help=config_help)
    p.add_argument("--url", required=True, help="Windmill's address, e.g. https://app.windmill.dev")
    p.add_argument("--workspace", required=True, help="the workspace id, e.g. acme")
    p.add_argument("--token", required=True, help="env:NAME or file:PATH holding a Windmill token (never the token)")
    p.add_argument("--folder", default="dodo", help="the Windmill folder for the kit (default dodo: f/dodo/...)")
    p.add_argument(
        "--database",
        help="env:NAME or file:PATH holding postgresql://USER:PASSWORD@HOST:5432/DB (or the URL itself, which "
        "then shows in the process list): create the kit's tables there and the f/FOLDER/db resource (its "
        "password in a secret variable)",
    )
    p.add_argument("--source", default="dodo", help="the [sources.NAME] the destinations receive from (default dodo)")
    p.add_argument("--kit", help="the kit folder (default: the one shipped with headrace)")
    p.add_argument(
        "--lock-timeout",
        type=float,
        default=LOCK_TIMEOUT,
        metavar="SECONDS",
        help=f"how long to wait for Windmill to build the scripts' and flows' locks (1 to 86400, default "
        f"{LOCK_TIMEOUT:g}); "
        "a run stopped here is finished by the next one, which sends nothing again",
    )
    p.add_argument("--dry-run", action="store_true", help="print what would change, and change nothing")
    p.set_defaults(func=cmd_connect_windmill)
    return connect


def _reference(option: str, value: str) -> str:
    if not value.startswith(("env:", "file:")):
        raise UsageError(
            f"{option}: give env:NAME or file:PATH, not the value itself (a value on the command line ends up in "
            "shell history and process lists, and the config must hold only the reference)"
        )
    try:
        return resolve_reference(value)
    except ValueError as exc:
        raise UsageError(f"{option}: {exc}") from None


def _say(line: str) -> None:
    print(line, flush=True)


def _destinations(args: argparse.Namespace, config: ConfigFile, run_base: str) -> list[str]:
    """Set the kit's destinations in `config`; returns the lines that say what changed."""
    from headrace.windmill.kit import DESTINATIONS
    from headrace.windmill.urls import LETTERS, RUN

    def run_url(row: KitDestination) -> str:
        path = f"f/{args.folder}/{row.target}"
        return RUN.build(run_base, workspace=args.workspace, endpoint="run", letter=LETTERS[row.kind], path=path)

    lines = []
    existing = config.destinations()
    urls = {row.name: run_url(row) for row in DESTINATIONS}
    for name, table in existing.items():
        # The starter's demo destination goes, unless this run writes the same URL under its name (connecting
        # `dev windmill` on its default address): then it is updated in place.
        if table.get("url") == EMULATOR_URL and urls.get(name) != EMULATOR_URL:
            config.remove_destination(name)
            lines.append(f"    remove  [destinations.{name}] (the starter's demo emulator)")
    for row in DESTINATIONS:
        path, url = f"f/{args.folder}/{row.target}", urls[row.name]
        wanted = {
            "source": args.source,
            "events": list(row.events),
            "url": url,
            "token": args.token,
            "transform": f"builtin:{row.template}",
            "schema": "enforce",
        }
        current = existing.get(row.name)
        if current is not None and current.get("url") not in (url, EMULATOR_URL):
            shown = str(current.get("url")).partition("?")[0]  # a ?token= in a URL is a secret
            lines.append(
                f"left alone  [destinations.{row.name}] (it points at {shown}; rename it to let "
                "connect windmill write its own)"
            )
            continue
        ours = current is not None and current.get("url") == url
        if current is not None and ours and all(current.get(key) == value for key, value in wanted.items()):
            lines.append(f" unchanged  [destinations.{row.name}]")
            continue
        # One it wrote before keeps the keys a person added (retry_schedule, timeout, ...).
        config.set_destination(row.name, {**current, **wanted} if ours and current is not None else wanted)
        lines.append(f"{'update' if ours else 'create':>10}  [destinations.{row.name}] -> {row.kind} {path}")
    return lines


def _create_tables(url: str, password: str, sql: Path | None) -> None:
    if sql is None:
        raise UsageError("--database: the kit has no sql/postgresql.sql")
    try:
        import psycopg
    except ImportError:
        raise UsageError("--database needs psycopg: pip install 'headrace[postgres]'") from None
    try:
        with psycopg.connect(url, connect_timeout=15, autocommit=True) as connection:
            connection.execute(sql.read_text("utf-8").encode())
    except psycopg.Error as exc:
        message = str(exc).replace(password, "***") if password else str(exc)
        raise UsageError(f"--database: creating the kit's tables failed: {exc.__class__.__name__}: {message}") from None


def _check_inputs(args: argparse.Namespace) -> None:
    from headrace.windmill.deploy_routes import FOLDER_NAME, WORKSPACE_ID

    url = urlsplit(args.url)
    if url.scheme not in ("http", "https") or not url.hostname or url.query or url.fragment:
        raise UsageError(f"--url {args.url!r}: give Windmill's address, e.g. https://app.windmill.dev")
    if not WORKSPACE_ID.match(args.workspace):
        raise UsageError(f"--workspace {args.workspace!r}: a workspace id is 1-64 letters, digits, '-' or '_'")
    if not FOLDER_NAME.match(args.folder):
        raise UsageError(f"--folder {args.folder!r}: a Windmill folder name is 1-64 letters, digits or '_'")


def _config_reference(reference: str, config: Path) -> str:
    """`reference` as the config must hold it: a relative `file:` path is read from the config's folder, so
    one given relative to the current folder is written as an absolute path when the two differ."""
    if not reference.startswith("file:"):
        return reference
    path = Path(reference.removeprefix("file:"))
    if path.is_absolute() or config.resolve().parent == Path.cwd().resolve():
        return reference
    return f"file:{path.resolve()}"


def _say_resources(args: argparse.Namespace, checks: list[ResourceCheck]) -> None:
    """The resources the kit reads: which exist, which the user must still create (never headrace: their
    values are the user's secrets), who reads each, and how to create it."""
    from headrace.windmill.deploy_api import api_base

    missing = [check for check in checks if check.state == "missing"]
    token = args.token.partition(":")[2]
    token_shell = f"${token}" if args.token.startswith("env:") else f"$(cat {shlex.quote(token)})"
    if not missing:
        _say(f"resources: all {len(checks)} the kit reads exist in workspace {args.workspace}")
    else:
        _say(
            f"resources: {len(missing)} of the {len(checks)} the kit reads are missing in workspace {args.workspace}; "
            "create them (headrace never creates or changes them: their values are your secrets), or the jobs "
            "that read them fail"
        )
    for check in checks:
        for line in check.lines(api_base(args.url), args.workspace, token_shell):
            _say(line)


def cmd_connect_windmill(args: argparse.Namespace) -> int:
    import aiohttp

    from headrace.windmill import deploy, deploy_api, deploy_resources
    from headrace.windmill.kit import KitError, find_kit, read_kit

    _check_inputs(args)
    if not 1 <= args.lock_timeout <= 86400:
        raise UsageError(f"--lock-timeout {args.lock_timeout:g}: give seconds between 1 and 86400")
    token = _reference("--token", args.token)
    args.token = _config_reference(args.token, Path(args.config))
    database_url = None
    if args.database:
        database_url = (
            _reference("--database", args.database) if args.database.startswith(("env:", "file:")) else args.database
        )
    try:
        database = deploy.Database.from_url(database_url) if database_url else None
        kit = read_kit(find_kit(args.kit), args.folder)
    except (KitError, deploy_api.DeployError) as exc:
        raise UsageError(str(exc)) from None
    config = ConfigFile.load(args.config)
    if config.source(args.source) is None:
        raise UsageError(f"{args.config} has no [sources.{args.source}]; run `headrace init -c {args.config}` first")
    if database_url is not None:
        if args.dry_run:
            _say("tables: would apply the kit's sql/postgresql.sql (idempotent)")
        else:  # first, so a database that cannot be reached stops before anything changes in Windmill
            _create_tables(database_url, database.password if database else "", kit.sql.get("postgresql"))
            _say("tables: the kit's tables exist (sql/postgresql.sql applied; it is idempotent)")

    async def main() -> None:
        timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            api = deploy_api.Api(http, args.url, args.workspace, token)
            me = await deploy_api.whoami(api)
            _say(f"Windmill {api.base_url}, workspace {args.workspace}, as {me.get('email', '?')}")
            steps = await deploy.plan(api, kit, database)
            changes = [step for step in steps if step.action in ("create", "update")]
            for step in steps:
                if step.action != "unchanged" or step.waits:
                    _say(step.line())
            left = [step for step in steps if step.action == "left alone"]
            if not changes and not any(step.waits for step in steps):
                _say(f"kit: up to date ({len(steps)} items checked{f', {len(left)} left alone' if left else ''})")
            resources.extend(await deploy_resources.check_resources(api, kit, steps))
            if args.dry_run:
                _say(f"kit: would send {len(changes)} changes (dry run: nothing sent)")
                return
            await deploy.apply(api, steps, _say, timeout=args.lock_timeout)
            if changes:
                _say(f"kit: deployed {len(changes)} changes")

    resources: list[deploy_resources.ResourceCheck] = []
    try:
        run(main())
    except deploy_api.DeployError as exc:
        raise UsageError(str(exc)) from None
    config = ConfigFile.load(args.config)  # again: the deployment took a while, and the file may have moved on
    lines = _destinations(args, config, deploy_api.api_base(args.url))
    for line in lines:
        _say(line)
    try:
        parse(config.text(), origin=str(args.config), base_dir=Path(args.config).resolve().parent)
    except ConfigError as exc:
        raise UsageError(f"the config would not be valid after the change, so it was not written:\n{exc}") from None
    if args.dry_run:
        _say(f"config: would write {args.config} (dry run: nothing written)")
    elif any(not line.lstrip().startswith(("unchanged", "left alone")) for line in lines):
        config.save()
        _say(f"config: wrote {args.config} (comments kept; the token is the reference {args.token})")
    else:
        _say(f"config: {args.config} up to date")
    _say_resources(args, resources)
    return 0
