"""Sample Dodo Payments webhook bodies, one per event type, and named variants of them, shipped inside the
package.

Every field of the `dodopayments` SDK model is present (optional ones as `null`); IDs are invented. A
variant is the same body with a few fields changed to a realistic case the plain sample does not show (a
zero-decimal currency, an empty customer name, a multi-subscription payment, ...); each is a patch in
`variants/<event type>.json` (`{name: {"about": text, "patch": {...}}}`), merged into the sample: objects
merge key by key, anything else (null, a list, a string) replaces. Every variant validates against the SDK
too (tests/unit/test_samples.py). The console's "send a test event", `send` and `transform` use the plain
samples; `check` runs the plain sample and every variant; `transform --variant`, `samples show --variant`
and the template tests use the variants (`variants(event_type)` lists them for any other caller).
"""

from __future__ import annotations

import difflib
import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

_DATA = files(__name__).joinpath("data")
_VARIANTS = files(__name__).joinpath("variants")

EVENT_TYPES: tuple[str, ...] = tuple(
    sorted(entry.name.removesuffix(".json") for entry in _DATA.iterdir() if entry.name.endswith(".json"))
)


def _unknown(what: str, name: str, known: tuple[str, ...], example: str) -> ValueError:
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    if close:
        hint = f"did you mean {', '.join(close)}?"
    elif known:
        hint = f"known {example}: {', '.join(known)}"
    else:
        hint = f"it has no {example}"
    return ValueError(f"{what} {name!r}; {hint}")


def path(event_type: str) -> Traversable:
    """Where the sample body for `event_type` lives (a Traversable; a plain file when installed normally)."""
    if event_type not in EVENT_TYPES:
        raise _unknown("no sample for Dodo event type", event_type, EVENT_TYPES, "types")
    return _DATA.joinpath(f"{event_type}.json")


def _variant_table(event_type: str) -> dict[str, dict[str, Any]]:
    path(event_type)  # refuses an unknown event type with its hint
    source = _VARIANTS.joinpath(f"{event_type}.json")
    if not source.is_file():
        return {}
    table: dict[str, dict[str, Any]] = json.loads(source.read_text(encoding="utf-8"))
    return table


def variants(event_type: str) -> tuple[str, ...]:
    """The names of `event_type`'s variants, sorted (empty when it has none). `load(event_type, name)` gives
    one; `check` and the console offer them beside the plain sample."""
    return tuple(sorted(_variant_table(event_type)))


def describe(event_type: str, variant: str) -> str:
    """One line saying what `variant` of `event_type` changes."""
    return str(_variant(event_type, variant)["about"])


def _variant(event_type: str, variant: str) -> dict[str, Any]:
    table = _variant_table(event_type)
    if variant not in table:
        raise _unknown(f"{event_type} has no sample variant", variant, tuple(sorted(table)), "variants")
    return table[variant]


def merge(base: Any, patch: Any) -> Any:
    """`patch` merged into `base`: objects merge key by key (recursively); anything else in `patch`, null
    included, replaces what `base` had."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = merge(base.get(key), value)
        return merged
    return patch


def load(event_type: str, variant: str | None = None) -> dict[str, Any]:
    """The sample webhook body for `event_type`, or its `variant`, freshly parsed (callers may mutate it).
    Raises ValueError naming close matches for an unknown type or variant."""
    body: dict[str, Any] = json.loads(path(event_type).read_text(encoding="utf-8"))
    if variant is None:
        return body
    changed: dict[str, Any] = merge(body, _variant(event_type, variant)["patch"])
    return changed
