"""STYLE.md's dependency direction, checked on the source (every import, also those inside functions):

- nothing imports api, console, server or cli, except what stands above them: server mounts api and console,
  cli starts the server; console and cli share views.py, never api;
- models, durations, files (a bounded read) and policy (numbers) know nothing of headrace; config knows only them;
- store, transform, windmill and dodo are leaf adapters: plain data, config and each other's pure pieces, never a
  stage (ingest, deliver), the app, or the front door;
- observe (logs, metrics, process stats) is used everywhere, so it knows only config and plain data;
- ingest and deliver see interfaces, never an implementation (a concrete store, the HTTP client to Windmill,
  a sandbox engine): app.py picks those;
- a package sits on one level: no two groups (a package, or a module at the root) reach each other.

Today's layout has one arrow that points the wrong way; it is listed in KNOWN with the reason, so a new one
fails here and an old one is removed from the list when it is fixed (the list may only shrink).
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "headrace"


def _module(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module(p): p for p in SRC.rglob("*.py")}


def imports(path: Path) -> set[str]:
    """The headrace modules `path` imports: `from headrace.dodo import samples` is headrace.dodo.samples."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {m for m in found if m == "headrace" or m.startswith("headrace.")}


def group(module: str) -> str:
    """The unit a rule talks about: a package (headrace.store) or a root module (headrace.app)."""
    parts = module.split(".")
    return module if len(parts) < 2 else f"headrace.{parts[1]}"


def edges() -> set[tuple[str, str]]:
    """(importing module, imported module) for every import between different groups."""
    return {
        (own, module)
        for own, path in MODULES.items()
        for module in imports(path)
        if group(module) != group(own) and module != "headrace"  # `from headrace import __version__`
    }


TOP = {"headrace.api", "headrace.console", "headrace.server", "headrace.cli"}
# Who may import a top group: what stands above it.
ABOVE = {
    "headrace.api": {"headrace.server"},
    "headrace.console": {"headrace.server"},
    "headrace.server": {"headrace.cli", "headrace.__main__"},
    "headrace.cli": {"headrace.__main__"},
}
PLAIN = {"headrace.models", "headrace.durations", "headrace.files", "headrace.policy"}
LEAVES = {"headrace.store", "headrace.transform", "headrace.windmill", "headrace.dodo"}
# What a leaf adapter may import besides its own package: plain data, config, pure helpers, each other.
LEAF_MAY = PLAIN | LEAVES | {"headrace.config", "headrace.search", "headrace.loopback"}
STAGES = {"headrace.ingest", "headrace.deliver"}
# Implementations the stages must not name (they get them from app.py through an interface).
CONCRETE = {
    "headrace.store.sqlite",
    "headrace.store.sqlite_io",
    "headrace.store.sqlite_file",
    "headrace.store.postgres",
    "headrace.store.postgres_io",
    "headrace.store.postgres_group",
    "headrace.store.core",
    "headrace.windmill.client",
    "headrace.windmill.emulator",
    "headrace.windmill.fake",
    "headrace.transform.pool",
    "headrace.transform.quickjs_sandbox",
    "headrace.transform.worker_process",
}
# Today's wrong-way arrows, each with why it is still there. Fix one, remove it here.
KNOWN = {
    ("headrace.config.destinations", "headrace.windmill.urls"): "a destination's url is parsed at load (RunTarget)",
}


def _offenders(rule: str) -> list[str]:
    return [f"{a} imports {b}" for a, b in sorted(edges()) if (a, b) not in KNOWN and _breaks(rule, a, b)]


def _breaks(rule: str, importer: str, imported: str) -> bool:
    source, target = group(importer), group(imported)
    if rule == "top":
        return target in TOP and source not in ABOVE[target]
    if rule == "plain":
        return source in PLAIN
    if rule == "config":
        return source == "headrace.config" and target not in PLAIN
    if rule == "leaves":
        return source in LEAVES and target not in LEAF_MAY
    if rule == "observe":
        return source == "headrace.observe" and target not in PLAIN | {"headrace.config"}
    if rule == "stages":
        return source in STAGES and imported in CONCRETE
    raise ValueError(rule)


def test_nothing_below_imports_api_console_server_or_cli():
    assert _offenders("top") == []


def test_console_and_cli_do_not_import_the_api():
    offenders = [
        f"{a} imports {b}"
        for a, b in edges()
        if group(a) in {"headrace.console", "headrace.cli"} and group(b) == "headrace.api"
    ]
    assert offenders == []


def test_models_and_durations_know_nothing_and_config_knows_only_them():
    assert _offenders("plain") == []
    assert _offenders("config") == []


def test_store_transform_windmill_and_dodo_are_leaf_adapters():
    assert _offenders("leaves") == []


def test_observe_knows_only_config_and_plain_data():
    """Logs, metrics and process stats are used by every layer, so they import nothing above config."""
    assert _offenders("observe") == []


def test_ingest_and_deliver_see_interfaces_not_implementations():
    assert _offenders("stages") == []


def test_a_package_sits_on_one_level():
    """STYLE.md: arrows only run down, so no two groups (packages or root modules) reach each other. When one
    does, a piece of a package is used from below while another piece uses that lower thing: split it."""
    graph: dict[str, set[str]] = {}
    for a, b in edges():
        if (a, b) not in KNOWN:
            graph.setdefault(group(a), set()).add(group(b))

    def reach(start: str) -> set[str]:
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    both_ways = [
        f"{a} imports {b}"
        for a, b in sorted(edges())
        if (a, b) not in KNOWN and group(a) != group(b) and group(a) in reach(group(b))
    ]
    assert both_ways == []


def test_the_known_exceptions_still_exist():
    """A fixed exception is taken off KNOWN, so the list only shrinks."""
    assert set(KNOWN) <= edges()
