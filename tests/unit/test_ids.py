"""One reading of a stored row id in a path or query (models.parse_id), one "no such event" message."""

from __future__ import annotations

import pytest

from headrace.models import ID_MAX, no_event, parse_id


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("0", 0),
        ("12", 12),
        ("007", 7),
        ("1" + "0" * 18, 10**18),  # 19 digits: an id (the console's old rule refused it)
        (str(ID_MAX), ID_MAX),  # at the limit
        (str(ID_MAX + 1), None),  # past it
        ("1" + "0" * 19, None),  # 20 digits
        ("9" * 10_000, None),  # long: refused by its length, no huge int built
        ("", None),
        ("-1", None),
        ("+1", None),
        (" 1", None),
        ("1.0", None),
        ("²", None),  # a digit to str.isdigit, not ASCII
        ("١٢", None),  # Arabic-Indic digits
        ("msg_1", None),
    ],
)
def test_parse_id_at_and_past_the_limit(text: str, expected: int | None) -> None:
    assert parse_id(text) == expected


def test_no_event_names_the_key_and_what_to_give_and_cuts_a_long_one() -> None:
    assert no_event("msg_x") == "no event 'msg_x' (give the event id or the webhook-id)"
    long = no_event("k" * 500)
    assert "(500 characters)" in long and len(long) < 120
