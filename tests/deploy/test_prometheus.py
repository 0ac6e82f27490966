"""The Prometheus side of deploy/: the alert rules pass `promtool test rules`, and a real Prometheus
(Debian's `prometheus` package; .ci/run installs it) scrapes a running headrace on loopback with the
example scrape job, loads the rules, and fires HeadraceDeliveryFailed on the very first failure."""

from __future__ import annotations

import asyncio
import shutil
import subprocess
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import yaml

from headrace.windmill.emulator import EmulatorState, running_emulator
from tests.deploy.test_grafana import dashboard_expressions
from tests.helpers import config_text, dodo_body, free_port, running_server, settings_for, signed_headers, wait_for

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
RULES = DEPLOY / "prometheus" / "headrace-rules.yml"
ADMIN_TOKEN = "prometheus-test-admin-token-0123456789abcdef"


def tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (Debian package `prometheus`; .ci/run installs it)")
    return path


def test_rules_pass_promtool_check_and_their_unit_tests() -> None:
    promtool = tool("promtool")
    check = subprocess.run([promtool, "check", "rules", str(RULES)], capture_output=True, text=True, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
    tests = subprocess.run(
        [promtool, "test", "rules", "headrace-rules.test.yml"],
        cwd=RULES.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tests.returncode == 0 and "SUCCESS" in tests.stdout, tests.stdout + tests.stderr


@pytest.mark.slow
def test_a_real_prometheus_scrapes_headrace_and_fires_on_the_first_failure(tmp_path: Path) -> None:
    prometheus = tool("prometheus")
    emulator_state = EmulatorState(any_path=False)  # every path is unknown: a delivery fails (404) at once
    with running_emulator(emulator_state) as emulator:
        port = free_port()
        text = config_text(
            tmp_path / "h.db",
            port,
            emulator.url("f/dodo/missing"),
            schedule='["10ms"]',
            extra_dest='schema = "off"',
            extra_server=f'admin_token = "{ADMIN_TOKEN}"',
        )
        settings = settings_for(text, tmp_path)
        web_port = free_port()
        config = prometheus_config(tmp_path, port)
        with (tmp_path / "prometheus.log").open("w") as log:
            process = subprocess.Popen(
                [
                    prometheus,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{web_port}",
                ],
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            try:
                asyncio.run(_scrape_and_alert(settings, port, f"http://127.0.0.1:{web_port}/api/v1"))
            finally:
                process.terminate()
                process.wait(20)


def prometheus_config(tmp_path: Path, port: int) -> Path:
    """deploy/'s example scrape job, pointed at this test's headrace, scraping every second."""
    token_file = tmp_path / "admin-token"
    token_file.write_text(ADMIN_TOKEN)
    config = yaml.safe_load((DEPLOY / "prometheus" / "prometheus.yml.example").read_text())
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(RULES)]
    job = config["scrape_configs"][0]
    job["authorization"]["credentials_file"] = str(token_file)
    job["static_configs"] = [{"targets": [f"127.0.0.1:{port}"]}]
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    return path


async def _scrape_and_alert(settings: Any, port: int, api: str) -> None:
    async with running_server(settings) as base, aiohttp.ClientSession() as http:

        async def query(expr: str) -> list[dict[str, Any]]:
            try:
                async with http.get(f"{api}/query", params={"query": expr}) as response:
                    body = await response.json()
            except aiohttp.ClientError:
                return []
            return list(body["data"]["result"]) if body.get("status") == "success" else []

        up = await wait_for(lambda: query('up{job="headrace"} == 1'), timeout=30, interval=0.25)
        assert up[0]["metric"]["instance"] == f"127.0.0.1:{port}"
        # Before any event: the zero-initialised failure series, build info and process metrics.
        failed = await wait_for(lambda: query('headrace_deliveries_total{outcome="failed"}'), timeout=10)
        assert [(s["metric"]["destination"], s["value"][1]) for s in failed] == [("payments", "0")]
        build = await query("headrace_build_info")
        assert build and build[0]["metric"]["version"] and build[0]["value"][1] == "1"
        for name in ("process_resident_memory_bytes", "process_open_fds", "process_start_time_seconds"):
            assert float((await query(name))[0]["value"][1]) > 0, name
        async with http.get(f"{api}/rules") as response:
            groups = (await response.json())["data"]["groups"]
        assert {rule["name"] for group in groups for rule in group["rules"]} >= {
            "HeadraceDeliveryFailed",
            "HeadraceDown",
            "HeadraceQueueStuck",
        }
        await asyncio.sleep(2)  # let a few scrapes record the 0 before the failure

        body = dodo_body()
        async with http.post(f"{base}/webhooks/dodo", data=body, headers=signed_headers(body, "msg_f")) as r:
            assert r.status == 202
        firing = await wait_for(
            lambda: query('ALERTS{alertname="HeadraceDeliveryFailed",alertstate="firing"}'),
            timeout=30,
            interval=0.25,
        )
        assert firing[0]["metric"]["destination"] == "payments"

        # Every Grafana panel's expression runs and, but for schema checks (off here), finds series.
        empty = []
        for expr in dashboard_expressions():
            promql = expr.replace("$instance", ".*").replace("$__rate_interval", "1m")
            async with http.get(f"{api}/query", params={"query": promql}) as response:
                answer = await response.json()
            assert answer["status"] == "success", (expr, answer)
            if not answer["data"]["result"]:
                empty.append(expr)
        assert all("headrace_schema_problems_total" in expr for expr in empty), empty
