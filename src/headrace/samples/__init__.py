"""Sample Dodo Payments webhook bodies, one per event type, shipped inside the package.

Every field of the `dodopayments` SDK model is present (optional ones as `null`); IDs are invented. The
console's "send a test event" and the transformation tests use them.
"""

from __future__ import annotations

import difflib
import json
from importlib.resources import files
from importlib.resources.abc import Traversable
from typing import Any

_DATA = files(__name__).joinpath("data")

EVENT_TYPES: tuple[str, ...] = tuple(
    sorted(entry.name.removesuffix(".json") for entry in _DATA.iterdir() if entry.name.endswith(".json"))
)


def path(event_type: str) -> Traversable:
    """Where the sample body for `event_type` lives (a Traversable; a plain file when installed normally)."""
    if event_type not in EVENT_TYPES:
        close = difflib.get_close_matches(event_type, EVENT_TYPES, n=3, cutoff=0.5)
        hint = f"did you mean {', '.join(close)}?" if close else f"known types: {', '.join(EVENT_TYPES)}"
        raise ValueError(f"no sample for Dodo event type {event_type!r}; {hint}")
    return _DATA.joinpath(f"{event_type}.json")


def load(event_type: str) -> dict[str, Any]:
    """The sample webhook body for `event_type`, freshly parsed (callers may mutate it)."""
    body: dict[str, Any] = json.loads(path(event_type).read_text(encoding="utf-8"))
    return body
