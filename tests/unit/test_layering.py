"""STYLE.md's dependency direction, checked on the source: nothing imports api, console or cli except the
server that mounts them (and cli, which starts the server); console and cli share views.py, never api."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "headrace"
TOP = ("headrace.api", "headrace.console", "headrace.cli")
ALLOWED = {"server.py", "__main__.py"}  # the server mounts the API and the console


def imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


def owner(module: str) -> str | None:
    return next((top for top in TOP if module == top or module.startswith(top + ".")), None)


def test_nothing_below_imports_api_console_or_cli():
    offenders = []
    for path in SRC.rglob("*.py"):
        relative = path.relative_to(SRC)
        own = "headrace." + ".".join(relative.with_suffix("").parts)
        if str(relative) in ALLOWED:
            continue
        for module in imports(path):
            top = owner(module)
            if top is not None and owner(own) != top:
                offenders.append(f"{relative} imports {module}")
    assert offenders == []


def test_console_and_cli_do_not_import_the_api():
    paths = [*(SRC / "console").rglob("*.py"), SRC / "cli.py", SRC / "cli_tools.py"]
    offenders = [f"{p.name}: {m}" for p in paths for m in imports(p) if owner(m) == "headrace.api"]
    assert offenders == []
