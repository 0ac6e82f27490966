"""Parse a webhook body into a JSON object, refusing what headrace could not store and show faithfully.

Accepted: UTF-8 JSON whose top level is an object, nested at most MAX_JSON_DEPTH deep, with finite numbers
and well-formed strings. Refused (400, reason `invalid_json`): anything else, including the non-standard
`NaN`, `Infinity`, numbers that overflow to infinity (`1e999999`) and lone UTF-16 surrogates (`"\\ud800"`):
none can be re-serialized as strict JSON by the API, the console or the CLI, and Dodo never sends them.

msgspec's parser refuses all of those by itself and reads everything else as the standard library does (the same
ints, to the same 4,300-digit limit, the same floats, the last of duplicate keys), in ~5 us on a 2.7 KB Dodo body
against ~14 us. It reads every body; the depth limit stays a bracket count. When it refuses a body, the standard
library reads it again, which names what is wrong (and decides: the fallback, not msgspec, has the last word).
"""

from __future__ import annotations

import json
import math
import re
from typing import Any

import msgspec

MAX_JSON_DEPTH = 64  # Dodo's events nest about 5 deep; deeper bodies are refused as not what Dodo sends
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


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


# One decoder for every body: json.loads with these hooks would build a new decoder and scanner per call.
_DECODER = json.JSONDecoder(parse_constant=_constant, parse_float=_finite)
_FAST = msgspec.json.Decoder()


def parse_object(body: bytes) -> dict[str, Any]:
    """The body as a dict, or BodyError naming what is wrong."""
    try:
        parsed = _FAST.decode(body)
    except (msgspec.DecodeError, ValueError, RecursionError):  # refused (older msgspec: UnicodeDecodeError too)
        return parse_object_stdlib(body)
    if not isinstance(parsed, dict):
        raise BodyError("not_an_object", "the body must be a JSON object")
    if body.count(b"{") + body.count(b"[") > MAX_JSON_DEPTH:  # else it cannot be too deep
        check_tree(parsed, surrogates=False)  # msgspec refused every lone surrogate
    return parsed


def parse_object_stdlib(body: bytes) -> dict[str, Any]:
    """`parse_object` on the standard library's parser alone: the reference the fast path must agree with, and
    what names the fault in a body msgspec refused."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BodyError("invalid_json", f"the body is not UTF-8 (byte {exc.start})") from None
    try:
        parsed = _DECODER.decode(text)
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


def check_tree(value: Any, *, surrogates: bool) -> None:
    """Depth limit (iteratively, so no recursion), and, when the raw text had \\uD8xx escapes, no lone surrogate."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > MAX_JSON_DEPTH:
                raise BodyError("too_deep", f"the body nests deeper than {MAX_JSON_DEPTH} levels")
            if surrogates:
                stack.extend((key, depth) for key in node)
            stack.extend((child, depth + 1) for child in node.values() if surrogates or _container(child))
        elif isinstance(node, list):
            if depth > MAX_JSON_DEPTH:
                raise BodyError("too_deep", f"the body nests deeper than {MAX_JSON_DEPTH} levels")
            stack.extend((child, depth + 1) for child in node if surrogates or _container(child))
        elif surrogates and isinstance(node, str):
            try:
                node.encode("utf-8")
            except UnicodeEncodeError:
                raise BodyError(
                    "invalid_json", "the body is not strict JSON: a string holds a lone UTF-16 surrogate"
                ) from None
