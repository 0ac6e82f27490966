"""Check a payload against a Windmill input schema, pure: which arguments would arrive wrong.

Windmill turns each top-level key of a JSON-object body into one argument of `main`. For Python scripts it
silently drops keys the signature does not declare and passes `None` for required arguments that are
missing, with no type check unless the script opts in. `validate` names each of those problems before the
job is created:

- missing:     a required argument is absent (and the schema gives no default for it)
- undeclared:  a key the target does not declare (Windmill would drop it; not for flows, which keep every
               input (A5), nor for Python scripts whose `main` takes `**kwargs` (A3))
- type:        JSON type differs from the declared one (integer vs number vs string ...), at any depth
- enum:        a value outside the declared choices
- null:        null where the argument is not nullable and has no default (null with a default becomes the
               default, A2)
- resource:    a resource-typed argument (`format: resource-*`) with neither a value nor a default

The schema is what `GET /w/{ws}/scripts/get/p/{path}` or `/flows/get/{path}` returns as `.schema`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

ProblemKind = Literal["missing", "undeclared", "type", "enum", "null", "resource"]
_JSON_TYPES = ("string", "integer", "number", "boolean", "object", "array", "null")
MAX_PROBLEMS = 50


@dataclass(frozen=True)
class Problem:
    path: str  # "amount_minor", "customer.email", "product_cart[0].quantity"
    kind: ProblemKind
    expected: str  # "integer", "one of ['a', 'b']", "a value", "not sent"
    sent: str  # "string \"49.99\"", "nothing", "null"

    @property
    def message(self) -> str:
        if self.kind == "missing":
            return f"argument {self.path!r} ({self.expected}) is required but was not sent"
        if self.kind == "undeclared":
            return f"argument {self.path!r} is not declared by the target, so Windmill drops it (sent {self.sent})"
        if self.kind == "resource":
            return f"argument {self.path!r} is a {self.expected} resource with no default; sent {self.sent}"
        return f"argument {self.path!r}: expected {self.expected}, sent {self.sent}"


def json_type(value: Any) -> str:
    """The JSON type name of a decoded JSON value (bool is not a number; 5.0 is a number, not an integer)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def describe(value: Any, limit: int = 40) -> str:
    """`string "49.99"`, `integer 5`, `object {...}`: the type and a short rendering of what was sent."""
    kind = json_type(value)
    if value is None:
        return "null"
    if isinstance(value, dict | list):
        return f"{kind} of {len(value)} item(s)" if isinstance(value, list) else f"{kind} with keys {sorted(value)[:5]}"
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{kind} {text}"


def _declared_types(spec: Mapping[str, Any]) -> tuple[str, ...]:
    declared = spec.get("type")
    if isinstance(declared, str):
        return (declared,)
    if isinstance(declared, list):
        return tuple(t for t in declared if isinstance(t, str))
    return ()


def _is_resource(spec: Mapping[str, Any]) -> bool:
    fmt = spec.get("format")
    return isinstance(fmt, str) and fmt.startswith("resource-")


def _nullable(spec: Mapping[str, Any], required: bool) -> bool:
    if spec.get("nullable") is True or "null" in _declared_types(spec):
        return True
    # An optional argument whose default is None (`x: str | None = None`) takes an explicit null the same way.
    return not required and spec.get("default") is None


def _type_ok(value: Any, types: tuple[str, ...]) -> bool:
    actual = json_type(value)
    return actual in types or (actual == "integer" and "number" in types)


def validate(
    payload: Mapping[str, Any], schema: Mapping[str, Any] | None, *, keeps_undeclared: bool = False
) -> list[Problem]:
    """Every problem Windmill would hide, in a stable order: undeclared keys first (a renamed field shows as
    the new name next to the old one), then the declared arguments in schema order. `keeps_undeclared`: the
    target receives keys it does not declare (a flow, A5; a Python `main(**kwargs)`, A3), so they are fine."""
    if not schema:
        return []
    problems: list[Problem] = []
    _check_object(payload, schema, "", problems, top=not keeps_undeclared)
    problems.sort(key=lambda p: p.kind != "undeclared")
    return problems[:MAX_PROBLEMS]


def _check_object(
    value: Mapping[str, Any], schema: Mapping[str, Any], prefix: str, problems: list[Problem], *, top: bool
) -> None:
    properties = schema.get("properties")
    properties = properties if isinstance(properties, Mapping) else {}
    required = {name for name in schema.get("required") or () if isinstance(name, str)}
    for name, spec in properties.items():
        if not isinstance(spec, Mapping):
            continue
        path = f"{prefix}{name}"
        is_required = name in required
        if name not in value:
            if _is_resource(spec):
                if spec.get("default") in (None, ""):
                    problems.append(Problem(path, "resource", str(spec["format"]).removeprefix("resource-"), "nothing"))
            elif is_required and spec.get("default") is None:
                problems.append(Problem(path, "missing", _expected(spec), "nothing"))
            continue
        _check_value(value[name], spec, path, problems, is_required)
    # Nested objects keep unknown keys in Windmill (only top-level keys become arguments); a schema may
    # also say so explicitly with additionalProperties.
    if top and properties and schema.get("additionalProperties") is not True:
        for name in value:
            if name not in properties:
                problems.append(Problem(f"{prefix}{name}", "undeclared", "not sent", describe(value[name])))


def _expected(spec: Mapping[str, Any]) -> str:
    if _is_resource(spec):
        return f"{str(spec['format']).removeprefix('resource-')} resource"
    types = _declared_types(spec)
    text = " or ".join(types) if types else "any value"
    enum = spec.get("enum")
    if isinstance(enum, list) and enum:
        text += f" (one of {enum[:8]!r})"
    return text


def _check_value(value: Any, spec: Mapping[str, Any], path: str, problems: list[Problem], required: bool) -> None:
    if value is None:
        # CONTRACT.md A2: an argument sent as null whose parameter has a default gets the default.
        if spec.get("default") is not None:
            return
        if not _nullable(spec, required):
            problems.append(Problem(path, "null", _expected(spec) + ", not null", "null"))
        return
    if _is_resource(spec):
        # A resource is passed as its value (an object) or by reference ("$res:path", resolved by Windmill).
        if not (isinstance(value, dict) or (isinstance(value, str) and value.startswith("$res:"))):
            problems.append(Problem(path, "resource", _expected(spec), describe(value)))
        return
    types = tuple(t for t in _declared_types(spec) if t in _JSON_TYPES)
    if types and not _type_ok(value, types):
        problems.append(Problem(path, "type", _expected(spec), describe(value)))
        return
    enum = spec.get("enum")
    if isinstance(enum, list) and enum and value not in enum:
        problems.append(Problem(path, "enum", f"one of {enum[:8]!r}", describe(value)))
        return
    if isinstance(value, dict) and isinstance(spec.get("properties"), Mapping) and spec["properties"]:
        _check_object(value, spec, f"{path}.", problems, top=False)
    elif isinstance(value, list) and isinstance(spec.get("items"), Mapping):
        for index, item in enumerate(value[:100]):
            _check_value(item, spec["items"], f"{path}[{index}]", problems, True)


def summary(problems: list[Problem], limit: int = 5) -> str:
    """One compact line for a delivery's error: missing arguments, undeclared ones, then each wrong value."""
    parts = []
    missing = [p for p in problems if p.kind == "missing"]
    if missing:
        names = ", ".join(f"{p.path!r} ({p.expected})" for p in missing[:10])
        parts.append(f"missing required argument{'s' if len(missing) > 1 else ''} {names}")
    undeclared = [p for p in problems if p.kind == "undeclared"]
    if undeclared:
        names = ", ".join(repr(p.path) for p in undeclared[:10])
        parts.append(f"not declared by the target (Windmill drops {'them' if len(undeclared) > 1 else 'it'}): {names}")
    values = [p for p in problems if p.kind not in ("missing", "undeclared")]
    parts.extend(p.message for p in values[:limit])
    if len(values) > limit:
        parts.append(f"and {len(values) - limit} more")
    return "; ".join(parts)
