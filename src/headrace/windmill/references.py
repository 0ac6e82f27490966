"""Keep text from Dodo out of Windmill's reference resolution (CONTRACT.md A4).

Windmill's worker replaces job-argument strings that start with `$var:`, `$res:`, `$jsonvar:`,
`$encrypted:` or `$NAME` (a reserved variable such as `$WM_TOKEN`) with a variable, a resource or a secret.
There is no escape syntax. Dodo payloads carry text the paying customer typed (name, address, checkout
metadata), so a customer named `$WM_TOKEN` could make Windmill hand the job's own token to a script.

The rule, applied to every string value of the Dodo body before a transformation sees it (or before the
body is sent as is): a string that starts with `$` or with the guard mark gets one guard mark (U+2060 WORD
JOINER, invisible when displayed) put in front. Nothing else changes: keys, numbers, and strings that start
with any other character are untouched, so the guard is free for ordinary payloads. It is reversible: a
receiving script gets the customer's exact text back with `unguard` (strip one leading mark).

A transformation makes new strings out of that text (`name.trim().split(" ")`, `tags.split(",")`), and a
piece of `"Ann $var:f/dodo/secret"` starts with `$`. So the transformation's output is guarded again
(`guard_output`): every string Windmill would resolve (`resolvable`: `$var:`, `$jsonvar:`, `$res:`,
`$encrypted:`, or `$NAME` for a name that may be reserved: `$WM_TOKEN`, a custom environment variable) and
every object whose only key is `$interpolate` get one mark in front, unless the script wrote the string as
a `Reference` (`windmill.reference("$res:f/dodo/db")` in the sandbox): the one way a transformation sends a
reference on purpose. The depth limit of Windmill's walk (50) is checked here too (`too_deep`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

MARK = "\u2060"
_GUARDED_STARTS = ("$", MARK)
# What Windmill's worker replaces (common.rs transform_json_value): a prefix, or a whole name that may be
# reserved (`WM_TOKEN`..., and the workspace's custom environment variables, whose names headrace cannot know).
_RESOLVED = re.compile(r"\$(?:(?:var|jsonvar|res|encrypted):|[A-Za-z_][A-Za-z0-9_]*\Z)")
INTERPOLATE = "$interpolate"  # newer Windmill resolves an object whose only key is this (CONTRACT A4)
MAX_INTERPOLATION_DEPTH = 50  # a walked value this deep fails the job (common.rs MAX_INTERPOLATION_DEPTH)
_ARRAY_DEPTH, _ARRAY_ITEMS = 2, 1000  # the walk enters arrays at depth <= 2 with <= 1000 items


class Reference(str):
    """A string a transformation marked as an intended Windmill reference (`windmill.reference(...)`): sent
    as written. Every other output string Windmill would resolve is guarded."""

    __slots__ = ()


def guard_text(text: str) -> str:
    """One string, guarded: a mark in front when it starts with `$` or with the mark itself."""
    return MARK + text if text.startswith(_GUARDED_STARTS) else text


def unguard_text(text: str) -> str:
    """The exact text the guard was given: one leading mark removed, if there is one."""
    return text[1:] if text.startswith(MARK) else text


def guard(value: Any) -> Any:
    """`value` (parsed JSON) with every string value guarded, at any depth. Returns `value` itself when
    nothing needed a mark, so the common case allocates nothing."""
    return _rebuild(value, guard_text, None, "")


def unguard(value: Any) -> Any:
    """The inverse of `guard`, at any depth (what the kit does where it reads customer text)."""
    if isinstance(value, str):
        return unguard_text(value)
    if isinstance(value, dict):
        return {key: unguard(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unguard(item) for item in value]
    return value


def resolvable(text: str) -> bool:
    """True when Windmill's worker would replace `text` in a walked argument (CONTRACT A4)."""
    return text.startswith("$") and _RESOLVED.match(text) is not None


def guard_output(value: Any) -> tuple[Any, list[str]]:
    """A transformation's payload with every string Windmill would resolve guarded (a `Reference` is left as
    written) and every object whose only key is `$interpolate` given a guarded key, and where each was
    (`customer.first`, `tags[1]`). Returns `value` itself when nothing needed a mark."""
    where: list[str] = []
    return _rebuild(value, _guard_resolvable, where, ""), where


def _guard_resolvable(text: str) -> str:
    return MARK + text if type(text) is str and resolvable(text) else text


def _rebuild(value: Any, change: Callable[[str], str], where: list[str] | None, at: str) -> Any:
    """`value` with `change` applied to every string at any depth; `value` itself when nothing changed. With
    `where` (the output guard), the paths of changed strings are added to it and `$interpolate` objects are
    guarded too."""
    if isinstance(value, str):
        new = change(value)
        if new is not value and where is not None:
            where.append(at or "(the payload)")
        return new
    if isinstance(value, dict):
        if where is not None and len(value) == 1 and INTERPOLATE in value:
            where.append(f"{at}.{INTERPOLATE}" if at else INTERPOLATE)
            return {MARK + INTERPOLATE: _rebuild(value[INTERPOLATE], change, where, at)}
        changed = None
        for key, item in value.items():
            new = _rebuild(item, change, where, (f"{at}.{key}" if at else str(key)) if where is not None else "")
            if new is not item:
                if changed is None:
                    changed = dict(value)
                changed[key] = new
        return value if changed is None else changed
    if isinstance(value, list):
        items = [
            _rebuild(item, change, where, f"{at}[{index}]" if where is not None else "")
            for index, item in enumerate(value)
        ]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def too_deep(args: Mapping[str, Any]) -> str | None:
    """The first argument Windmill's reference walk would take to depth MAX_INTERPOLATION_DEPTH (the argument is
    depth 0, each object member or walked array item one more), or None. Windmill fails such a job whenever
    the argument holds `$var:`/`$res:`... text anywhere, which customer text can always supply."""
    for name, value in args.items():
        if _reaches_limit(value, 0):
            return name
    return None


def _reaches_limit(value: Any, depth: int) -> bool:
    if depth >= MAX_INTERPOLATION_DEPTH:
        return True
    if isinstance(value, dict):
        return any(_reaches_limit(item, depth + 1) for item in value.values())
    if isinstance(value, list) and depth <= _ARRAY_DEPTH and len(value) <= _ARRAY_ITEMS:
        return any(_reaches_limit(item, depth + 1) for item in value)
    return False
