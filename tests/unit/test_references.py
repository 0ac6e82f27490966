"""The reference guard: Dodo text never starts with `$` when it reaches Windmill, and comes back exactly."""

from __future__ import annotations

import pytest

from headrace.windmill.references import MARK, guard, guard_text, unguard, unguard_text


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
