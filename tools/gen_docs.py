"""Generate docs/configuration.md (from the settings models) and docs/cli.md (from --help).

.venv/bin/python tools/gen_docs.py          # rewrite both files
.venv/bin/python tools/gen_docs.py --check  # exit 1 if either is out of date (the test suite does this)
"""

from __future__ import annotations

import argparse
import io
import os
import sys
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from headrace.cli.main import build_parser
from headrace.config import DestinationSettings, ServerSettings, SourceSettings

ROOT = Path(__file__).resolve().parents[1]
os.environ["COLUMNS"] = "100"  # argparse wraps help to the terminal; fix it so the output is stable

CONFIG_INTRO = """# Configuration reference

headrace reads one TOML file (`headrace serve -c headrace.toml`; `headrace init` writes a commented
starter). It is validated at start-up: an unknown key, a missing required key or a bad value stops
start-up with a message that names the table and the key. `SIGHUP` (`systemctl reload`) reads it again and
applies it only if it is valid; a few `[server]` keys need a restart (docs/operations.md, "Reloading the
config and rotating secrets").

Any secret (`admin_token`, `secrets`, `token`, and `url`) can be written as `"env:NAME"` to read it from the
environment variable NAME at start-up, or as `"file:PATH"` to read it from a file (relative to this file's
folder) at start-up and at every reload; headrace never prints a resolved secret. Durations are written
`250ms`, `5s`, `5m`, `2h` or `1d`.

This file is generated from the settings models by `tools/gen_docs.py`; a test fails when it is stale.
"""

TABLES: list[tuple[str, type[BaseModel], str]] = [
    ("[server]", ServerSettings, "The HTTP server, the store and logging."),
    (
        "[sources.NAME]",
        SourceSettings,
        "A sender of webhooks; its ingest URL is `POST /webhooks/NAME`. Dodo is one source.",
    ),
    (
        "[destinations.NAME]",
        DestinationSettings,
        "A Windmill script or flow that receives the events of one source that match `events`.",
    ),
]


def _default(field: Any) -> str:
    if field.is_required():
        return "required"
    value = field.get_default(call_default_factory=True)
    if value is None or value == ():
        return "none"
    if isinstance(value, tuple):
        value = list(value)
    if isinstance(value, bool):
        return f"`{str(value).lower()}`"
    if isinstance(value, str):
        return f'`"{value}"`'
    if isinstance(value, list):
        return "`[" + ", ".join(f'"{v}"' for v in value) + "]`"
    return f"`{value}`"


def configuration() -> str:
    out = [CONFIG_INTRO]
    for title, model, about in TABLES:
        out.append(f"\n## {title}\n\n{about}\n\n| key | default | meaning |\n|---|---|---|")
        for name, field in model.model_fields.items():
            key = field.alias or name
            out.append(f"| `{key}` | {_default(field)} | {field.description or ''} |")
    return "\n".join(out) + "\n"


def cli_reference() -> str:
    parser = build_parser()
    out = [
        "# CLI reference",
        "",
        "Generated from `headrace --help` by `tools/gen_docs.py`; a test fails when stale.",
        "",
        "```text",
        _help(parser),
        "```",
    ]
    subparsers = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, sub in subparsers.choices.items():
        out += ["", f"## headrace {name}", "", "```text", _help(sub), "```"]
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        for action in nested:
            for child_name, child in action.choices.items():
                out += ["", f"## headrace {name} {child_name}", "", "```text", _help(child), "```"]
    return "\n".join(out) + "\n"


def _help(parser: argparse.ArgumentParser) -> str:
    buffer = io.StringIO()
    with redirect_stdout(buffer):
        parser.print_help()
    return buffer.getvalue().rstrip()


def main() -> int:
    check = "--check" in sys.argv
    stale = []
    for path, text in ((ROOT / "docs/configuration.md", configuration()), (ROOT / "docs/cli.md", cli_reference())):
        if check:
            if not path.exists() or path.read_text() != text:
                stale.append(path.name)
        else:
            path.write_text(text)
    if stale:
        print(f"out of date: {', '.join(stale)}; run .venv/bin/python tools/gen_docs.py", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
