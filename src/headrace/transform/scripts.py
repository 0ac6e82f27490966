"""Find a destination's transformation source: `builtin:NAME` (shipped templates) or a `.js` file path."""

from __future__ import annotations

import pathlib
from importlib.resources import files

from headrace.transform import Script

BUILTIN_PREFIX = "builtin:"
_BUILTIN = files("headrace.transform").joinpath("builtin")


def list_builtins() -> list[str]:
    """Names of the built-in templates (`builtin/NAME.js` inside the package), sorted."""
    if not _BUILTIN.is_dir():
        return []
    return sorted(entry.name.removesuffix(".js") for entry in _BUILTIN.iterdir() if entry.name.endswith(".js"))


def load_script(spec: str, base_dir: pathlib.Path) -> Script:
    """Load `builtin:NAME`, or a `.js` file (a relative path is taken relative to `base_dir`).

    Raises ValueError saying what was wrong and what would work instead.
    """
    if spec.startswith(BUILTIN_PREFIX):
        name = spec.removeprefix(BUILTIN_PREFIX)
        available = list_builtins()
        if name not in available:
            choices = ", ".join(f"{BUILTIN_PREFIX}{n}" for n in available) or "none are installed"
            raise ValueError(f"unknown built-in transformation {spec!r}; available: {choices}")
        return Script(name=spec, source=_BUILTIN.joinpath(f"{name}.js").read_text(encoding="utf-8"))
    if not spec.strip():
        raise ValueError(f"empty transformation; give a .js file or one of: {_builtin_hint()}")
    path = pathlib.Path(spec).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    if path.suffix != ".js":
        raise ValueError(
            f"transformation {spec!r} is not a .js file; give the path of a JavaScript file defining "
            f"`function handler(webhook)`, or one of: {_builtin_hint()}"
        )
    if not path.is_file():
        raise ValueError(f"transformation file {spec!r} not found (looked at {path}); check the path")
    try:
        source = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"cannot read transformation file {path}: {exc}") from None
    return Script(name=spec, source=source)


def _builtin_hint() -> str:
    return ", ".join(f"{BUILTIN_PREFIX}{n}" for n in list_builtins()) or "(no built-in templates installed)"
