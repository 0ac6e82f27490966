"""The status lists in one place (models.py): every copy elsewhere is derived from it or pinned here."""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any, get_args

from headrace.api.openapi import document
from headrace.cli.main import build_parser
from headrace.models import ATTENTION_STATUSES, EVENT_STATUSES, ORIGINS, DeliveryStatus, JobState, event_status

SRC = Path(__file__).parents[2] / "src/headrace"


def _lists_in(template: str) -> list[tuple[str, ...]]:
    """The literal lists a Jinja template loops over (`{% for x in [...] %}`)."""
    text = (SRC / "console/templates" / template).read_text()
    return [tuple(ast.literal_eval(m)) for m in re.findall(r"{%\s*for \w+ in (\[.*?\])\s*%}", text)]


def test_the_console_lists_the_models_statuses():
    counted = ("pending", "in_flight", "failed")  # what StoreStats counts (open_ and failed_delivery_counts)
    assert _lists_in("events.html") == [counted, EVENT_STATUSES, ORIGINS]
    assert set(counted) <= set(get_args(DeliveryStatus))


def test_attention_statuses_need_an_open_or_failed_delivery_or_a_failed_job():
    """list_events_attention looks for these statuses only among events with such a delivery
    (deliveries_attention): every combination that reaches one has one."""
    pairs = [(s, j) for s in get_args(DeliveryStatus) for j in (None, *get_args(JobState))]
    combos = [[]] + [[p] for p in pairs] + [[p, q] for p in pairs for q in pairs]
    for combo in combos:
        if event_status(combo) in ATTENTION_STATUSES:
            assert any(s in ("pending", "in_flight", "failed") or j == "failure" for s, j in combo), combo


def test_the_cli_offers_exactly_the_event_statuses():
    parser = build_parser()
    events: Any = next(
        a
        for a in parser._subparsers._group_actions
        if a.choices and "events" in a.choices  # type: ignore[union-attr]
    ).choices["events"]
    [status] = [a for a in events._actions if a.dest == "status"]
    assert tuple(status.choices) == EVENT_STATUSES


def test_the_api_document_enumerates_the_event_statuses():
    params = document()["paths"]["/api/v1/events"]["get"]["parameters"]
    [status] = [p for p in params if p["name"] == "status"]
    assert status["schema"]["enum"] == [*EVENT_STATUSES, ""]  # empty: any status (the console's form sends it)


def test_the_databases_allow_exactly_the_delivery_statuses():
    for dialect in ("sqlite", "postgresql"):
        sql = (SRC / f"store/sql/{dialect}/migrations/0001_initial.sql").read_text()
        [allowed] = re.findall(r"CHECK \(status IN \(([^)]*)\)\)", sql)
        assert tuple(ast.literal_eval(f"({allowed},)")) == get_args(DeliveryStatus), dialect


def test_every_event_status_is_reachable_by_the_rule():
    cases = [[], [("pending", None)], [("failed", None)], [("delivered", "failure")], [("delivered", "success")]]
    reached = {event_status(c) for c in cases} | {event_status([("cancelled", None)])}
    assert reached == set(EVENT_STATUSES)


def test_cancelled_needs_a_cancelled_delivery_and_unrouted_none():
    """list_events_cancelled looks among events with a cancelled delivery (deliveries_cancelled), and
    list_events_unrouted among events with none (events_unrouted): every combination agrees."""
    pairs = [(s, j) for s in get_args(DeliveryStatus) for j in (None, *get_args(JobState))]
    combos = [[]] + [[p] for p in pairs] + [[p, q] for p in pairs for q in pairs]
    for combo in combos:
        status = event_status(combo)
        if status == "cancelled":
            assert any(s == "cancelled" for s, _ in combo), combo
        assert (status == "unrouted") == (combo == []), combo
