"""Keep text from Dodo out of Windmill's reference resolution (CONTRACT.md A4).

Windmill's worker replaces job-argument strings that start with `$var:`, `$res:`, `$jsonvar:`,
`$encrypted:` or `$NAME` (a reserved variable such as `$WM_TOKEN`) with a variable, a resource or a secret.
There is no escape syntax. Dodo payloads carry text the paying customer typed (name, address, checkout
metadata), so a customer named `$WM_TOKEN` could make Windmill hand the job's own token to a script.

The rule, applied to every string value of the Dodo body before a transformation sees it (or before the
body is sent as is): a string that starts with `$` or with the guard mark gets one guard mark (U+2060 WORD
JOINER, invisible when displayed) put in front. Nothing else changes: keys, numbers, and strings that start
with any other character are untouched, so the guard is free for ordinary payloads. It is reversible: a
receiving script gets the customer's exact text back with `unguard` (strip one leading mark). Strings the
transformation writes itself (for example a `$res:` path it chooses on purpose) are not guarded.
"""

from __future__ import annotations

from typing import Any

MARK = "\u2060"
_GUARDED_STARTS = ("$", MARK)


def guard_text(text: str) -> str:
    """One string, guarded: a mark in front when it starts with `$` or with the mark itself."""
    return MARK + text if text.startswith(_GUARDED_STARTS) else text


def unguard_text(text: str) -> str:
    """The exact text the guard was given: one leading mark removed, if there is one."""
    return text[1:] if text.startswith(MARK) else text


def guard(value: Any) -> Any:
    """`value` (parsed JSON) with every string value guarded, at any depth. Returns `value` itself when
    nothing needed a mark, so the common case allocates nothing."""
    if isinstance(value, str):
        return guard_text(value)
    if isinstance(value, dict):
        changed = None
        for key, item in value.items():
            new = guard(item)
            if new is not item:
                if changed is None:
                    changed = dict(value)
                changed[key] = new
        return value if changed is None else changed
    if isinstance(value, list):
        items = [guard(item) for item in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value


def unguard(value: Any) -> Any:
    """The inverse of `guard`, at any depth (what the kit does where it reads customer text)."""
    if isinstance(value, str):
        return unguard_text(value)
    if isinstance(value, dict):
        return {key: unguard(item) for key, item in value.items()}
    if isinstance(value, list):
        return [unguard(item) for item in value]
    return value
