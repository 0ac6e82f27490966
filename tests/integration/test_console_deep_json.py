"""The console shows JSON indented, but a very deep value (a script's output may be 960 levels deep) is not
quadratic in its depth: indentation stops after INDENT_DEPTH levels."""

from __future__ import annotations

import json
from typing import Any

from headrace.console.pages import INDENT_DEPTH, _compact, pretty
from headrace.dodo import samples


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for i in range(depth):
        value = {"k": value} if i % 2 else [value]
    return value


def test_shallow_values_look_as_before() -> None:
    for value in (samples.load("payment.succeeded"), {}, [], None, "é", {"a": [1, {"b": None}], "c": {}}):
        assert pretty(value) == json.dumps(value, indent=2, ensure_ascii=False, allow_nan=False)


def test_a_960_level_value_renders_in_linear_size_and_reads_back() -> None:
    value = nested(960)
    text = pretty(value)
    shallower = pretty(nested(480))  # a depth json.loads reads back here
    assert json.loads(shallower) == nested(480)
    compact = len(_compact(value))
    assert "".join(text.split()) == "".join(_compact(value).split())  # the same JSON, only the layout differs
    # The indented levels cost at most INDENT_DEPTH lines of INDENT_DEPTH indents each; the rest is compact.
    assert len(text) <= compact + 2 * INDENT_DEPTH * (INDENT_DEPTH + 2) * 2, (len(text), compact)
    assert len(text) < 20_000  # it was 1.85 MB
