"""The reference guard: Dodo text never starts with `$` when it reaches Windmill, and comes back exactly."""

from __future__ import annotations

import pytest

from headrace.windmill.references import (
    MARK,
    MAX_INTERPOLATION_DEPTH,
    Reference,
    guard,
    guard_output,
    guard_text,
    resolvable,
    too_deep,
    unguard,
    unguard_text,
)


@pytest.mark.parametrize(
    "text", ["$WM_TOKEN", "$var:f/secret", "$res:u/admin/db", "$encrypted:x", "$", MARK, MARK + "$x", MARK * 3]
)
def test_guarded_text_never_starts_with_dollar_and_round_trips(text: str) -> None:
    guarded = guard_text(text)
    assert not guarded.startswith("$")
    assert guarded.startswith(MARK)
    assert unguard_text(guarded) == text


@pytest.mark.parametrize("text", ["", "Ada", "5$", " $WM_TOKEN", "pay_0NW", "€9"])
def test_other_text_is_untouched(text: str) -> None:
    assert guard_text(text) is text


def test_nested_values_are_guarded_keys_are_not() -> None:
    body = {"$k": "$res:a", "data": {"customer": {"name": "$WM_TOKEN"}, "tags": ["ok", ["$var:x"]]}, "n": 5}
    guarded = guard(body)
    assert guarded["$k"] == MARK + "$res:a"
    assert guarded["data"]["customer"]["name"] == MARK + "$WM_TOKEN"
    assert guarded["data"]["tags"] == ["ok", [MARK + "$var:x"]]
    assert unguard(guarded) == body
    assert body["data"]["customer"]["name"] == "$WM_TOKEN"  # the input is not mutated


def test_nothing_to_guard_returns_the_same_object() -> None:
    body = {"data": {"customer": {"name": "Ada"}, "items": [1, "a"]}}
    assert guard(body) is body


@pytest.mark.parametrize(
    ("text", "resolved"),
    [
        ("$var:f/x", True), ("$jsonvar:f/x", True), ("$res:f/x", True), ("$encrypted:abc", True), ("$var:", True),
        ("$WM_TOKEN", True), ("$DATABASE_URL", True), ("$usd", True),
        ("$5.00", False), ("$WM_TOKEN ", False), ("$ x", False), ("$", False), (MARK + "$WM_TOKEN", False),
        ("x$var:f/x", False), ("", False),
    ],
)  # fmt: skip
def test_resolvable_is_what_windmills_worker_replaces(text: str, resolved: bool) -> None:
    assert resolvable(text) is resolved


def test_guard_output_marks_what_windmill_resolves_except_references_and_says_where() -> None:
    payload = {
        "a": ["$var:x", "x", MARK + "$var:y"],
        "b": {"$interpolate": "${secret}"},
        "two": {"$interpolate": "x", "other": 1},
        "ref": Reference("$res:f/a/b"),
        "price": "$5.00",
    }
    guarded, where = guard_output(payload)
    assert guarded["a"] == [MARK + "$var:x", "x", MARK + "$var:y"]
    assert guarded["b"] == {MARK + "$interpolate": "${secret}"}
    assert guarded["two"] == {"$interpolate": "x", "other": 1}  # not the only key: Windmill leaves it
    assert guarded["ref"] == "$res:f/a/b" and guarded["price"] == "$5.00"
    assert where == ["a[0]", "b.$interpolate"]
    assert unguard(guarded["a"]) == ["$var:x", "x", "$var:y"]
    untouched = {"a": ["x"], "ref": Reference("$res:f/a/b")}
    assert guard_output(untouched) == (untouched, []) and guard_output(untouched)[0] is untouched


def nested(depth: int, leaf: object = "x") -> object:
    for _ in range(depth):
        leaf = {"n": leaf}
    return leaf


def test_too_deep_follows_windmills_walk_at_and_past_the_limit() -> None:
    assert too_deep({"a": nested(MAX_INTERPOLATION_DEPTH - 1)}) is None
    assert too_deep({"ok": 1, "a": nested(MAX_INTERPOLATION_DEPTH)}) == "a"
    assert too_deep({"a": [nested(MAX_INTERPOLATION_DEPTH - 1)]}) == "a"  # an array at depth 0 is walked
    assert too_deep({"a": {"b": {"c": {"d": [nested(60)]}}}}) is None  # an array at depth 3 is not walked
    assert too_deep({"a": [*range(1000), nested(60)]}) is None  # 1001 items: not walked
