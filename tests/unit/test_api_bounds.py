"""The bounds the OpenAPI document publishes are the ones the server enforces: times, limits, ids and keys."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest

from headrace.api.openapi import document
from headrace.durations import TIME_MAX_LENGTH, TIME_PATTERNS, parse_since
from headrace.models import ID_MAX
from headrace.store import programs
from headrace.views import LIMIT_MAX, TEXT_MAX_LENGTH, event_filter

NOW = 1_800_000_000.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2h", NOW - 7200),
        ("250ms", NOW - 0.25),
        ("1.5d", NOW - 1.5 * 86400),
        ("1795687200", 1795687200.0),
        ("1795687200.5", 1795687200.5),
        ("2026-11-26T10:00:00Z", datetime(2026, 11, 26, 10, tzinfo=UTC).timestamp()),
        ("2026-11-26t10:00:00z", datetime(2026, 11, 26, 10, tzinfo=UTC).timestamp()),
        ("2026-11-26T12:00:00+02:00", datetime(2026, 11, 26, 10, tzinfo=UTC).timestamp()),
        ("2026-11-26T10:00:00.123456789Z", datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC).timestamp()),
        ("0001-01-01T00:00:00+23:59", datetime(1, 1, 1, tzinfo=UTC).timestamp() - 86340),
        ("2026-11-26", datetime(2026, 11, 26, tzinfo=UTC).timestamp()),
    ],
)
def test_a_point_in_time_in_every_documented_form(text: str, expected: float) -> None:
    assert parse_since(text, NOW) == pytest.approx(expected)


@pytest.mark.parametrize(
    "text",
    [
        "",
        " 2h",
        "2h ",
        "2 h",
        "2w",
        ".5",
        "5.",
        "²",
        "١٢",
        "2026-02-30",
        "2026-11-26T10:00:00",
        "2026-11-26T25:00:00Z",
        "yesterday",
        "9" * (TIME_MAX_LENGTH + 1),
    ],
)
def test_anything_else_is_refused_with_the_forms_named(text: str) -> None:
    with pytest.raises(ValueError, match="2h"):
        parse_since(text, NOW)


def test_at_the_length_limit_and_past_it() -> None:
    assert parse_since("9" * TIME_MAX_LENGTH, NOW) == float("9" * TIME_MAX_LENGTH)
    with pytest.raises(ValueError, match=f"longer than {TIME_MAX_LENGTH}"):
        parse_since("9" * (TIME_MAX_LENGTH + 1), NOW)


def test_the_document_publishes_the_server_patterns() -> None:
    [since] = [p for p in document()["paths"]["/api/v1/events"]["get"]["parameters"] if p["name"] == "since"]
    patterns = [branch.get("pattern") for branch in since["schema"]["anyOf"]]
    assert TIME_PATTERNS["duration"] in patterns and TIME_PATTERNS["unix"] in patterns
    for pattern in TIME_PATTERNS.values():
        re.compile(pattern)


def test_limit_and_before_at_and_past_their_bounds() -> None:
    assert event_filter({"limit": "1"}, NOW).limit == 1
    assert event_filter({"limit": str(LIMIT_MAX)}, NOW).limit == LIMIT_MAX
    assert event_filter({"before": "0"}, NOW).before_id == 0
    assert event_filter({"before": str(ID_MAX)}, NOW).before_id == ID_MAX
    for query in ({"limit": "0"}, {"limit": str(LIMIT_MAX + 1)}, {"limit": "²"}, {"limit": ""}, {"limit": "9" * 5000}):
        with pytest.raises(ValueError, match="limit: a number from 1 to"):
            event_filter(query, NOW)
    for before in (str(ID_MAX + 1), "²", "-1", ""):
        with pytest.raises(ValueError, match="before: an event id"):
            event_filter({"before": before}, NOW)


def test_empty_parameters_mean_any_and_long_names_are_refused() -> None:
    flt = event_filter({"status": "", "type": "", "source": "", "since": "", "until": ""}, NOW)
    assert (flt.status, flt.event_type, flt.source, flt.since, flt.until) == (None, None, None, None, None)
    assert event_filter({"type": "t" * TEXT_MAX_LENGTH}, NOW).event_type == "t" * TEXT_MAX_LENGTH
    with pytest.raises(ValueError, match=f"type: at most {TEXT_MAX_LENGTH}"):
        event_filter({"type": "t" * (TEXT_MAX_LENGTH + 1)}, NOW)
    with pytest.raises(ValueError, match="until: 'soon' is not a time"):
        event_filter({"until": "soon"}, NOW)


@pytest.mark.parametrize("key", ["²", "99999999999999999999", str(2**63)])
def test_a_key_no_id_column_can_hold_is_looked_up_as_a_webhook_id(key: str) -> None:
    step = next(programs.get_event(key))
    assert step.query == "get_event_by_webhook_id" and step.params == {"webhook_id": key}


def test_a_key_an_id_column_can_hold_is_an_event_id() -> None:
    step = next(programs.get_event(str(2**63 - 1)))
    assert step.query == "get_event" and step.params == {"event_id": 2**63 - 1}
