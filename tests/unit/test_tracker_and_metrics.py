"""Pure parts of job tracking and metrics: back-off, error excerpts, exposition text."""

from __future__ import annotations

import os
import platform
import subprocess
import time

from headrace import __version__
from headrace.config import parse
from headrace.deliver.tracker import MAX_DELAY, error_excerpt, next_delay
from headrace.models import QueueStats
from headrace.observe.metrics import Metrics


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
    text = metrics.render(
        QueueStats({("payments", "pending"): 4}, oldest_open_at=990.0, open_jobs=2, search_pending=37)
    )
    lines = set(text.splitlines())
    assert 'headrace_events_received_total{source="dodo",outcome="accepted"} 2' in lines
    assert 'headrace_events_rejected_total{source="dodo",reason="bad\\"sig"} 1' in lines
    assert 'headrace_delivery_attempt_duration_seconds_bucket{destination="payments",le="0.005"} 1' in lines
    assert 'headrace_delivery_attempt_duration_seconds_bucket{destination="payments",le="0.25"} 2' in lines
    assert 'headrace_delivery_attempt_duration_seconds_bucket{destination="payments",le="+Inf"} 3' in lines
    assert 'headrace_delivery_attempt_duration_seconds_count{destination="payments"} 3' in lines
    assert 'headrace_queue_depth{destination="payments",state="pending"} 4' in lines
    assert "headrace_queue_oldest_age_seconds 10.000" in lines and "headrace_jobs_open 2" in lines
    assert "headrace_search_pending 37" in lines and "# TYPE headrace_search_pending gauge" in lines
    assert "# TYPE headrace_deliveries_total counter" in lines


SETTINGS_TEXT = """
[sources.dodo]
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]

[destinations.payments]
source = "dodo"
events = ["payment.*"]
url = "https://windmill.example/api/w/acme/jobs/run/p/f/dodo/ledger"
token = "t"

[destinations.quiet]
source = "dodo"
events = ["refund.*"]
url = "https://windmill.example/api/w/acme/jobs/run/p/f/dodo/refund"
token = "t"
schema = "off"
"""


def test_configured_series_start_at_zero_so_the_first_failure_is_an_increase() -> None:
    settings = parse(SETTINGS_TEXT, environ={})
    metrics = Metrics(clock=lambda: 1000.0, settings=settings)
    lines = set(metrics.render(QueueStats({("payments", "pending"): 3}, None, 0)).splitlines())
    for destination in ("payments", "quiet"):
        for outcome in ("delivered", "failed", "cancelled"):
            assert f'headrace_deliveries_total{{destination="{destination}",outcome="{outcome}"}} 0' in lines
        for outcome in ("success", "failure", "unknown"):
            assert f'headrace_jobs_total{{destination="{destination}",outcome="{outcome}"}} 0' in lines
        for reason in ("no_answer", "http_404", "http_401", "http_503"):
            assert f'headrace_delivery_retries_total{{destination="{destination}",reason="{reason}"}} 0' in lines
        assert f'headrace_delivery_attempt_duration_seconds_count{{destination="{destination}"}} 0' in lines
        assert f'headrace_queue_depth{{destination="{destination}",state="in_flight"}} 0' in lines
    assert 'headrace_queue_depth{destination="payments",state="pending"} 3' in lines  # the store's count wins
    assert 'headrace_schema_problems_total{destination="payments",mode="enforce"} 0' in lines
    assert not any(line.startswith('headrace_schema_problems_total{destination="quiet"') for line in lines)
    assert 'headrace_events_received_total{source="dodo",outcome="accepted"} 0' in lines
    assert 'headrace_events_rejected_total{source="dodo",reason="bad_signature"} 0' in lines

    metrics.inc("headrace_deliveries_total", "payments", "failed")
    metrics.declare(settings)  # a reload keeps what was counted
    assert 'headrace_deliveries_total{destination="payments",outcome="failed"} 1' in metrics.render(None)


def test_build_info_and_process_metrics_are_exported() -> None:
    text = Metrics().render(None)
    values = {
        line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines() if line.startswith("process_")
    }
    assert f'headrace_build_info{{version="{__version__}",python="{platform.python_version()}"}} 1' in text
    assert set(values) == {
        "process_cpu_seconds_total",
        "process_resident_memory_bytes",
        "process_virtual_memory_bytes",
        "process_open_fds",
        "process_max_fds",
        "process_start_time_seconds",
    }
    assert "# TYPE process_cpu_seconds_total counter" in text
    # Checked against ps(1), an independent reader of the same process.
    rss_kb, elapsed = subprocess.run(
        ["ps", "-o", "rss=,etimes=", "-p", str(os.getpid())], capture_output=True, text=True, check=True
    ).stdout.split()
    assert 0.7 < values["process_resident_memory_bytes"] / (int(rss_kb) * 1024) < 1.3
    assert abs(values["process_start_time_seconds"] - (time.time() - int(elapsed))) < 3
    assert values["process_cpu_seconds_total"] > 0 and values["process_open_fds"] >= 3

    before = values["process_open_fds"]
    files = [open(os.devnull) for _ in range(20)]  # noqa: SIM115
    try:
        after = next(
            float(line.split()[1])
            for line in Metrics().render(None).splitlines()
            if line.startswith("process_open_fds")
        )
    finally:
        for f in files:
            f.close()
    assert after == before + 20


def test_a_cached_value_follows_its_clock_and_is_computed_again_when_the_clock_goes_back():
    import asyncio

    from headrace.observe.metrics import Cached

    now = [1000.0]
    calls: list[float] = []

    async def compute() -> float:
        calls.append(now[0])
        return now[0]

    async def main() -> list[float]:
        kept: Cached[float] = Cached(15.0, lambda: now[0])
        seen = [await kept.get(compute)]
        now[0] += 14.9
        seen.append(await kept.get(compute))  # within the ttl: the kept value
        now[0] += 0.1
        seen.append(await kept.get(compute))  # at the ttl: computed again
        now[0] -= 3600  # a wall clock set back an hour
        seen.append(await kept.get(compute))
        return seen

    assert asyncio.run(main()) == [1000.0, 1000.0, 1015.0, 1015.0 - 3600]
    assert len(calls) == 3
