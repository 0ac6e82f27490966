"""Parse a webhook body into a JSON object, refusing what headrace could not store and show faithfully.

Accepted: UTF-8 JSON whose top level is an object, nested at most MAX_JSON_DEPTH deep, with finite numbers
and well-formed strings. Refused (400, reason `invalid_json`): anything else, including the non-standard
`NaN`, `Infinity`, numbers that overflow to infinity (`1e999999`) and lone UTF-16 surrogates (`"\\ud800"`):
none can be re-serialized as strict JSON by the API, the console or the CLI, and Dodo never sends them.

Parsed by pydantic-core's JSON parser (Rust; a dependency already), which is strict by itself about what the
standard library's needs hooks for (NaN and Infinity, lone surrogates, invalid UTF-8, control characters):
~2x faster than `json.loads` with the hooks, the largest single cost of ingest after the store (bench/ingest.py).
What it refuses is parsed again by the standard library with the hooks, so a refusal names what is wrong (and a
body only the standard library would take is still taken). What it accepts that the standard library with the
hooks refuses, a number that overflows to infinity, is checked for only when the body has an exponent or a run of
300 digits; nesting is checked as before.
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

from pydantic_core import from_json

MAX_JSON_DEPTH = 64  # Dodo's events nest about 5 deep; deeper bodies are refused as not what Dodo sends
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
# Where a number may overflow a 64-bit float: an exponent (`1e400`, `1E+400`), or a long run of digits (`9` * 400
# + `.0`). Looked for in the body mapped to its digits (0), exponent letters (e) and signs (+), everything else a
# space: a translate and three substring searches in C (~6 us for a Dodo body; a regular expression took ~95).
_NUMBER_SHAPE = bytes(
    ord("0") if chr(c).isdigit() and c < 128 else ord("e") if c in b"eE" else ord("+") if c in b"+-" else ord(" ")
    for c in range(256)
)
_DIGIT_RUN = b"0" * 300


def _may_overflow(body: bytes) -> bool:
    shape = body.translate(_NUMBER_SHAPE)
    return b"0e0" in shape or b"0e+0" in shape or _DIGIT_RUN in shape


class BodyError(Exception):
    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


def _constant(name: str) -> Any:
    raise BodyError("invalid_json", f"the body is not strict JSON: {name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise BodyError("invalid_json", f"the body is not strict JSON: {text[:40]} overflows a 64-bit float")
    return value


def parse_object(body: bytes) -> dict[str, Any]:
    """The body as a dict, or BodyError naming what is wrong."""
    try:
        parsed = from_json(body, allow_inf_nan=False)
    except ValueError:
        return _parse_strictly(body)  # says exactly what is wrong
    if not isinstance(parsed, dict):
        raise BodyError("not_an_object", "the body must be a JSON object")
    floats = _may_overflow(body)
    if floats or body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH:  # else it cannot be too deep
        try:
            check_tree(parsed, surrogates=False, floats=floats)
        except BodyError:
            return _parse_strictly(body)  # names the number, or says how deep
    return parsed


def _parse_strictly(body: bytes) -> dict[str, Any]:
    """The standard library's parser with hooks that refuse what is not strict JSON."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError("invalid_json", f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        parsed = json.loads(text, parse_constant=_constant, parse_float=_finite)
    except RecursionError:
        raise BodyError("too_deep", f"the body nests deeper than {MAX_JSON_DEPTH} levels") from None
    except ValueError:
        raise BodyError("invalid_json", "the body is not valid JSON") from None
    if not isinstance(parsed, dict):
        raise BodyError("not_an_object", "the body must be a JSON object")
    surrogates = _SURROGATE_ESCAPE.search(body) is not None
    if surrogates or body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH:  # else it cannot be too deep
        check_tree(parsed, surrogates=surrogates)
    return parsed


def _container(value: Any) -> bool:
    return isinstance(value, dict | list)


def check_tree(value: Any, *, surrogates: bool, floats: bool = False) -> None:
    """Depth limit (iteratively, so no recursion); when the raw text had \\uD8xx escapes, no lone surrogate; with
    `floats`, no float that overflowed to infinity."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > MAX_JSON_DEPTH:
                raise BodyError("too_deep", f"the body nests deeper than {MAX_JSON_DEPTH} levels")
            if surrogates:
                stack.extend((key, depth) for key in node)
            stack.extend((child, depth + 1) for child in node.values() if surrogates or floats or _container(child))
        elif isinstance(node, list):
            if depth > MAX_JSON_DEPTH:
                raise BodyError("too_deep", f"the body nests deeper than {MAX_JSON_DEPTH} levels")
            stack.extend((child, depth + 1) for child in node if surrogates or floats or _container(child))
        elif floats and isinstance(node, float) and not math.isfinite(node):
            raise BodyError("invalid_json", "the body is not strict JSON: a number overflows a 64-bit float")
        elif surrogates and isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                raise BodyError(
                    "invalid_json", "the body is not strict JSON: a string holds a lone UTF-16 surrogate"
                ) from None
