"""Tokens copied from an example: publicly known, so refused wherever a secret is checked."""

from __future__ import annotations

import re

# Words that mark a value as something to replace; compared with the token lowercased and stripped of - _ . spaces.
_MARKERS = (
    "changeme",
    "replaceme",
    "example",
    "placeholder",
    "yourtoken",
    "youradmintoken",
    "generatewith",
    "fillmein",
)


def is_placeholder(token: str) -> bool:
    """True when `token` reads like an example's stand-in ("change-me…", "example…", "your-token…")."""
    folded = re.sub(r"[-_.\s]", "", token.lower())
    return any(marker in folded for marker in _MARKERS)
