"""deploy/grafana/headrace-dashboard.json: every expression names only metrics headrace exports, and the
dashboard covers what an operator watches (ingest, outcomes, latency, queue, oldest pending, job failures).
tests/deploy/test_prometheus.py also runs every expression against a real Prometheus scraping headrace."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from headrace.config import parse
from headrace.models import QueueStats
from headrace.observe.metrics import Metrics

DASHBOARD = Path(__file__).resolve().parents[2] / "deploy" / "grafana" / "headrace-dashboard.json"
METRIC = re.compile(r"\b(headrace_[a-z_]+|process_[a-z_]+|up)\b(?!\s*\()")
CONFIG = """
[sources.dodo]
secrets = ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"]
[destinations.payments]
source = "dodo"
events = ["*"]
url = "https://windmill.example/api/w/acme/jobs/run/p/f/dodo/ledger"
token = "t"
"""


def dashboard_expressions() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text("utf-8"))
    return [target["expr"] for panel in dashboard["panels"] for target in panel.get("targets", [])]


def exported_names() -> set[str]:
    """Every sample name a headrace process exports, from a real render with a configured destination."""
    metrics = Metrics(clock=lambda: 0.0, settings=parse(CONFIG, environ={}))
    text = metrics.render(QueueStats({("payments", "pending"): 1}, oldest_open_at=0.0, open_jobs=0), True, 0)
    return {line.split("{")[0].split(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}


def test_every_expression_names_only_exported_metrics() -> None:
    exported = exported_names() | {"up"}
    expressions = dashboard_expressions()
    assert len(expressions) >= 15
    used: set[str] = set()
    for expr in expressions:
        names = set(METRIC.findall(expr))
        assert names, f"no metric in {expr!r}"
        assert names <= exported, f"{expr!r} names {sorted(names - exported)}, which headrace does not export"
        used |= names
    # What an operator needs to see: ingest, refusals, outcomes, latency, queue depth, oldest pending, jobs.
    assert used >= {
        "headrace_events_received_total",
        "headrace_events_rejected_total",
        "headrace_deliveries_total",
        "headrace_delivery_attempt_duration_seconds_bucket",
        "headrace_queue_depth",
        "headrace_queue_oldest_age_seconds",
        "headrace_jobs_total",
        "headrace_jobs_open",
    }
    assert any('outcome="failure"' in e and "headrace_jobs_total" in e for e in expressions)
    # The store: search backlog, refusals because the store could not write, readiness, the SQLite WAL.
    assert used >= {"headrace_search_pending", "headrace_ready", "headrace_store_wal_bytes"}
    assert any("store_unavailable" in e and "headrace_events_rejected_total" in e for e in expressions)


# Gauges read from the shared store: every instance reports the same number, so a sum over instances counts it
# once per instance (10 pending shown as 20 with two). They are combined with max (readiness with min).
STORE_GAUGES = (
    "headrace_queue_depth",
    "headrace_queue_oldest_age_seconds",
    "headrace_jobs_open",
    "headrace_search_pending",
)


def test_store_gauges_are_never_summed_over_instances() -> None:
    for expr in dashboard_expressions():
        for gauge in STORE_GAUGES:
            if gauge in expr:
                assert re.match(rf"^max( by \([a-z, ]+\) )?\({gauge}\{{", expr), expr


def test_the_dashboard_declares_no_unused_inputs() -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text("utf-8"))
    text = DASHBOARD.read_text("utf-8")
    for declared in dashboard.get("__inputs", []):
        assert "${" + declared["name"] + "}" in text, f"__inputs declares {declared['name']}, which nothing uses"


def test_the_dashboard_is_importable_and_laid_out_without_overlaps() -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text("utf-8"))
    assert dashboard["uid"] and dashboard["title"] == "headrace"
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["instance"]["includeAll"]
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in dashboard["panels"]:
        pos = panel["gridPos"]
        assert pos["x"] >= 0 and pos["x"] + pos["w"] <= 24
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}" and panel["targets"], panel["title"]
        for x in range(pos["x"], pos["x"] + pos["w"]):
            for y in range(pos["y"], pos["y"] + pos["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps another panel"
                cells.add((x, y))
