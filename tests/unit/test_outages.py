"""The outage rule (headrace/ops/outages.py): which stretches lost events for good, and what they say."""

from __future__ import annotations

from headrace.ops.outages import MAX_RETRY_GAP, RETRY_WINDOW, Outage, down_stretches, refusal_runs

H = 3600.0


def test_a_gap_longer_than_dodos_retries_is_an_outage_and_a_shorter_one_is_not():
    spans = [(0.0, 10 * H), (10 * H + RETRY_WINDOW + 1, 100 * H)]
    assert down_stretches(spans, now=100 * H) == [Outage("down", 10 * H, 10 * H + RETRY_WINDOW + 1)]
    assert down_stretches([(0.0, 10 * H), (10 * H + RETRY_WINDOW, 100 * H)], now=100 * H) == []


def test_overlapping_instances_cover_each_other():
    spans = [(0.0, 50 * H), (10 * H, 20 * H), (40 * H, 100 * H)]
    assert down_stretches(spans, now=100 * H) == []


def test_nothing_alive_now_for_longer_than_the_window_is_an_outage_so_far():
    assert down_stretches([(0.0, 10 * H)], now=10 * H + RETRY_WINDOW + 5) == [
        Outage("down", 10 * H, 10 * H + RETRY_WINDOW + 5)
    ]
    assert down_stretches([], now=1e9) == []


def test_the_message_names_what_was_missed_and_the_command():
    outage = Outage("down", 1764547200.0, 1764547200.0 + 2 * 86400)  # 2025-12-01T00:00Z, two days
    text = outage.message()
    assert text.startswith("events from 2025-12-01T00:00:00Z to 2025-12-01T20:25:00Z were not retried by Dodo")
    assert "run `headrace reconcile --since 2025-12-01T00:00:00Z`" in text
    refused = Outage("refused", 1764547200.0, 1764547200.0 + 2 * 86400, "dodo")
    assert "401" in refused.message() and "--source dodo --since" in refused.message()


def test_401_hours_form_a_run_while_no_pause_is_longer_than_dodos_longest():
    hours = [("dodo", i * H, i * H + 60) for i in range(0, 30, 10)]  # every 10 h, 20 h in all: too short
    assert refusal_runs(hours) == []
    hours = [("dodo", i * H, i * H + 60) for i in range(0, 40, 10)]  # 30 h
    assert refusal_runs(hours) == [Outage("refused", 0.0, 30 * H + 60, "dodo")]
    split = [("dodo", 0.0, 20 * H), ("dodo", 20 * H + MAX_RETRY_GAP + 1, 40 * H)]
    assert refusal_runs(split) == []  # two runs 11 h apart, each shorter than the window
    two = [("a", 0.0, 60.0), ("a", 10 * H, 29 * H), ("b", 0.0, 29 * H)]
    assert refusal_runs(two) == [Outage("refused", 0.0, 29 * H, "a"), Outage("refused", 0.0, 29 * H, "b")]
