"""Windmill input schema validation: missing, undeclared, types, nested, enums, nullable, resources."""

from __future__ import annotations

from typing import Any

import pytest

from headrace.windmill.schema import describe, json_type, summary, validate

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "webhook_id": {"type": "string", "default": None},
        "amount_minor": {"type": "integer", "default": None},
        "rate": {"type": "number", "default": None},
        "paid": {"type": "boolean", "default": None},
        "kind": {"type": "string", "enum": ["payment", "refund"], "default": None},
        "customer": {
            "type": "object",
            "properties": {"email": {"type": "string"}, "age": {"type": "integer"}},
            "required": ["email"],
        },
        "cart": {"type": "array", "items": {"type": "object", "properties": {"qty": {"type": "integer"}}}},
        "tags": {"type": "array", "items": {"type": "string"}},
        "note": {"type": "string", "default": None},
        "limit": {"type": "integer", "default": 10},
        "maybe": {"type": "string", "nullable": True},
        "db": {"type": "object", "format": "resource-postgresql", "default": "$res:f/dodo/db"},
    },
    "required": ["webhook_id", "amount_minor", "kind", "maybe"],
}

GOOD = {
    "webhook_id": "msg_1",
    "amount_minor": 4999,
    "rate": 1,  # an integer is a number
    "paid": True,
    "kind": "payment",
    "customer": {"email": "a@b.c", "extra": "nested keys are kept by Windmill"},
    "cart": [{"qty": 2}],
    "tags": ["a"],
    "maybe": None,
}


def problems(payload: dict[str, Any], schema: dict[str, Any] = SCHEMA) -> list[tuple[str, str]]:
    return [(p.path, p.kind) for p in validate(payload, schema)]


def test_a_fitting_payload_has_no_problems() -> None:
    assert validate(GOOD, SCHEMA) == []


def test_missing_required_argument() -> None:
    payload = {k: v for k, v in GOOD.items() if k != "amount_minor"}
    [problem] = validate(payload, SCHEMA)
    assert (problem.path, problem.kind) == ("amount_minor", "missing")
    assert problem.message == "argument 'amount_minor' (integer) is required but was not sent"


def test_missing_optional_argument_is_fine() -> None:
    assert problems({k: v for k, v in GOOD.items() if k not in ("note", "rate", "paid")}) == []


def test_undeclared_argument_would_be_dropped_and_comes_first() -> None:
    payload = {k: v for k, v in GOOD.items() if k != "amount_minor"} | {"amount_cents": 4999}
    assert problems(payload) == [("amount_cents", "undeclared"), ("amount_minor", "missing")]
    assert "Windmill drops it (sent integer 4999)" in validate(payload, SCHEMA)[0].message


@pytest.mark.parametrize(
    ("key", "value", "sent"),
    [
        ("amount_minor", "4999", 'string "4999"'),
        ("amount_minor", 49.99, "number 49.99"),
        ("amount_minor", 5.0, "number 5.0"),  # JSON 5.0 arrives as a float in Python
        ("amount_minor", True, "boolean true"),
        ("rate", "1.5", 'string "1.5"'),
        ("paid", "yes", 'string "yes"'),
        ("webhook_id", 12, "integer 12"),
        ("customer", "a@b.c", 'string "a@b.c"'),
        ("tags", "a", 'string "a"'),
    ],
)
def test_type_mismatch_names_argument_expected_and_sent(key: str, value: Any, sent: str) -> None:
    [problem] = validate({**GOOD, key: value}, SCHEMA)
    assert (problem.path, problem.kind, problem.sent) == (key, "type", sent)
    assert problem.message.startswith(f"argument {key!r}: expected ")
    assert problem.message.endswith(f"sent {sent}")


def test_nested_objects_and_arrays() -> None:
    payload = {**GOOD, "customer": {"age": "12"}, "cart": [{"qty": 1}, {"qty": "2"}], "tags": ["a", 3]}
    assert problems(payload) == [
        ("customer.email", "missing"),
        ("customer.age", "type"),
        ("cart[1].qty", "type"),
        ("tags[1]", "type"),
    ]


def test_enum() -> None:
    [problem] = validate({**GOOD, "kind": "gift"}, SCHEMA)
    assert problem.kind == "enum" and "one of ['payment', 'refund']" in problem.message


def test_nullable() -> None:
    assert problems({**GOOD, "maybe": None, "note": None}) == []  # nullable / optional with a None default
    assert problems({**GOOD, "amount_minor": None}) == [("amount_minor", "null")]  # required, not nullable
    assert problems({**GOOD, "limit": None}) == []  # A2: Windmill gives the default 10 instead of the null
    assert problems({**GOOD, "db": None}) == []  # likewise a resource with a default
    union = {"type": "object", "properties": {"x": {"type": ["string", "null"]}}, "required": ["x"]}
    assert problems({"x": None}, union) == []


def test_resources() -> None:
    assert problems(GOOD) == []  # no db sent: the "$res:" default applies
    assert problems({**GOOD, "db": {"host": "h"}}) == []  # a resource value
    assert problems({**GOOD, "db": "$res:u/me/other"}) == []  # a reference, resolved by Windmill
    assert problems({**GOOD, "db": "postgres://x"}) == [("db", "resource")]
    no_default = {"type": "object", "properties": {"db": {"type": "object", "format": "resource-postgresql"}}}
    [problem] = validate({}, no_default)
    assert problem.kind == "resource" and "postgresql resource with no default" in problem.message


def test_no_schema_or_open_schema() -> None:
    assert validate({"anything": 1}, None) == [] and validate({"anything": 1}, {}) == []
    open_schema = {"type": "object", "properties": {"a": {"type": "integer"}}, "additionalProperties": True}
    assert problems({"a": 1, "b": 2}, open_schema) == []


def test_helpers() -> None:
    assert [json_type(v) for v in (None, True, 1, 1.5, "s", [], {})] == [
        "null",
        "boolean",
        "integer",
        "number",
        "string",
        "array",
        "object",
    ]
    assert describe("x" * 100).endswith("…") and len(describe("x" * 100)) < 60
    many = validate(
        {},
        {
            "type": "object",
            "properties": {f"a{i}": {"type": "string"} for i in range(8)},
            "required": [f"a{i}" for i in range(8)],
        },
    )
    assert summary(many).startswith("missing required arguments 'a0' (string), 'a1' (string)")
    wrong = validate(
        {f"a{i}": i for i in range(8)} | {"b": 1},
        {"type": "object", "properties": {f"a{i}": {"type": "string"} for i in range(8)}},
    )
    text = summary(wrong)
    assert text.startswith("not declared by the target (Windmill drops it): 'b'; argument 'a0': expected string")
    assert text.endswith("; and 3 more")


def test_flows_and_kwargs_scripts_keep_undeclared_keys() -> None:
    payload = {**GOOD, "extra": 1, "more": {"x": 1}}
    assert problems(payload) == [("extra", "undeclared"), ("more", "undeclared")]
    assert validate(payload, SCHEMA, keeps_undeclared=True) == []  # A3 / A5: they reach the code
    # declared arguments are still checked
    assert [(p.path, p.kind) for p in validate({**payload, "kind": 3}, SCHEMA, keeps_undeclared=True)] == [
        ("kind", "type")
    ]


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("def main(a: str, b: int = 1, **kwargs):\n    return kwargs\n", True),
        ("import x\n\nasync def main(\n    a: dict = {},\n    **rest,\n) -> None:\n    pass\n", True),
        ("def main(a: str, b: tuple = (1, 2)):\n    f(**a)\n", False),
        ("def helper(**kw):\n    pass\n\ndef main(a):\n    pass\n", False),
        ("def main(*args):\n    pass\n", False),
    ],
)
def test_kwargs_detection_reads_mains_signature(content: str, expected: bool) -> None:
    from headrace.windmill.client import takes_kwargs

    assert takes_kwargs("python3", content) is expected
    assert takes_kwargs("deno", content) is False
