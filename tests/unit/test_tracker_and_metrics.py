"""Pure parts of job tracking and metrics: back-off, error excerpts, exposition text."""

from __future__ import annotations

from headrace.deliver.tracker import MAX_DELAY, error_excerpt, next_delay
from headrace.metrics import Metrics
from headrace.models import QueueStats


def test_backoff_doubles_and_is_capped() -> None:
    delays = [next_delay(n, rand=lambda: 0.5) for n in range(10)]
    assert delays[:4] == [1.0, 2.0, 4.0, 8.0]
    assert delays[-1] == MAX_DELAY and max(delays) == MAX_DELAY
    assert 0.9 <= next_delay(0, rand=lambda: 0.0) < next_delay(0, rand=lambda: 1.0) <= 1.1


def test_windmill_error_object_excerpt() -> None:
    error = {"error": {"name": "ValueError", "message": "bad currency", "stack": "Traceback ..."}}
    assert error_excerpt(error) == "ValueError: bad currency\nTraceback ..."
    assert error_excerpt({"error": {"message": "x"}}) == "Error: x"
    assert error_excerpt({"other": 1}) == '{"other": 1}'


def test_render_counters_histogram_and_gauges() -> None:
    metrics = Metrics(clock=lambda: 1000.0)
    metrics.inc("headrace_events_received_total", "dodo", "accepted")
    metrics.inc("headrace_events_received_total", "dodo", "accepted")
    metrics.inc("headrace_events_rejected_total", "dodo", 'bad"sig')
    metrics.observe_attempt("payments", 0.003)
    metrics.observe_attempt("payments", 0.2)
    metrics.observe_attempt("payments", 99.0)
    text = metrics.render(QueueStats({("payments", "pending"): 4}, oldest_open_at=990.0, open_jobs=2))
    lines = set(text.splitlines())
    assert 'headrace_events_received_total{source="dodo",outcome="accepted"} 2' in lines
    assert 'headrace_events_rejected_total{source="dodo",reason="bad\\"sig"} 1' in lines
    assert 'headrace_delivery_attempt_duration_seconds_bucket{destination="payments",le="0.005"} 1' in lines
    assert 'headrace_delivery_attempt_duration_seconds_bucket{destination="payments",le="0.25"} 2' in lines
    assert 'headrace_delivery_attempt_duration_seconds_bucket{destination="payments",le="+Inf"} 3' in lines
    assert 'headrace_delivery_attempt_duration_seconds_count{destination="payments"} 3' in lines
    assert 'headrace_queue_depth{destination="payments",state="pending"} 4' in lines
    assert "headrace_queue_oldest_age_seconds 10.000" in lines and "headrace_jobs_open 2" in lines
    assert "# TYPE headrace_deliveries_total counter" in lines
