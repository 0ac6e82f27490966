"""The console's "Try a transformation" page: its JSON actions under the console's guard, and the page itself in
a real headless Chromium (typing a script, picking a sample, previewing, sending a test, seeing the outcome)."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import aiohttp
import pytest

from headrace.dodo import samples
from headrace.windmill.emulator import EmulatorThread, running_emulator
from tests import cdp
from tests.helpers import (
    config_text,
    deployed_windmill,
    dodo_body,
    free_port,
    post,
    running_server,
    settings_for,
    signed_headers,
)
from tests.integration.test_console import csrf_of, login

SCHEMA = {
    "type": "object",
    "properties": {"amount": {"type": "integer"}, "customer_name": {"type": "string"}},
    "required": ["amount", "customer_name"],
}
GOOD = """function handler(webhook) {
  const p = webhook.payload.data;
  webhook.payload = {amount: p.total_amount, customer_name: p.customer.name};
  return webhook;
}"""
BROKEN = """function handler(webhook) {
  const p = webhook.payload.data;
  webhook.payload = {amount: p.total.amount};
  return webhook;
}"""
TOKEN = "console-admin-token-1"


@pytest.fixture
def emulator():
    state = deployed_windmill()
    state.add_target("script", "f/dodo/on_payment", lambda args: {"booked": args.get("amount")}, schema=SCHEMA)
    with running_emulator(state) as emu:
        yield emu


def test_console_actions_follow_the_console_guard_and_csrf_rules(tmp_path: Path, emulator: EmulatorThread):
    settings = settings_for(config_text(tmp_path / "h.db", free_port(), emulator.url(), admin_token=TOKEN), tmp_path)
    form = {"destination": "payments", "event_type": "payment.succeeded", "script": GOOD}

    async def main() -> None:
        async with running_server(settings) as base:
            async with (
                aiohttp.ClientSession() as anonymous,
                anonymous.post(f"{base}/console/try/preview", data=form, allow_redirects=False) as r,
            ):
                assert r.status == 303  # to the login form
            cookie = await login(base, TOKEN)
            async with aiohttp.ClientSession(cookies={"headrace_session": cookie}) as http:
                async with http.get(f"{base}/console/try") as response:
                    page = await response.text()
                    assert response.status == 200
                csrf = csrf_of(page)
                assert page.count('<option value="') >= len(samples.EVENT_TYPES) + 1
                assert "f/dodo/on_payment" in page and "test-token" not in page
                for headers, data in (({"Origin": "http://evil.example"}, {**form, "csrf": csrf}), ({}, form)):
                    async with http.post(f"{base}/console/try/send", data=data, headers=headers) as response:
                        assert response.status == 403 and (await response.json())["error"] == "cross_site_request"
                assert not emulator.state.jobs
                ok = {**form, "csrf": csrf}
                async with http.post(f"{base}/console/try/preview", data=ok, headers={"Origin": base}) as response:
                    answer = await response.json()
                assert response.status == 200 and answer["schema"]["verdict"] == "fits", answer
                async with http.post(
                    f"{base}/console/try/preview", data={**ok, "destination": "nope"}, headers={"Origin": base}
                ) as response:
                    assert response.status == 404
                async with http.post(f"{base}/console/try/send", data=ok, headers={"Origin": base}) as response:
                    test = await response.json()
                assert response.status == 201 and test["test"] is True and test["job_id"] in emulator.state.jobs
                async with http.get(f"{base}/console/try/tests/{test['id']}") as response:
                    assert (await response.json())["id"] == test["id"]
                async with http.post(f"{base}/console/try/download", data=ok, headers={"Origin": base}) as response:
                    assert response.status == 200 and await response.text() == GOOD
                    assert response.headers["Content-Disposition"] == 'attachment; filename="payments.js"'
                async with http.get(f"{base}/console/try") as response:
                    page = await response.text()
                assert "sample payment.succeeded" in page and ">TEST<" in page  # listed, marked as a test

    asyncio.run(main())


@pytest.mark.skipif(cdp.CHROMIUM is None, reason="Chromium is installed by .ci/run (Debian package chromium)")
def test_chromium_tries_a_script_sees_the_error_line_and_sends_a_test(tmp_path: Path, emulator: EmulatorThread):
    settings = settings_for(config_text(tmp_path / "h.db", free_port(), emulator.url()), tmp_path)
    variant = samples.variants("payment.succeeded")[0]
    shot = Path(os.environ.get("HEADRACE_SCREENSHOTS", tmp_path)) / "try.png"

    async def main() -> None:
        async with running_server(settings) as base, cdp.browser(1280, 1000) as page:
            async with aiohttp.ClientSession() as http:
                body = dodo_body("payment.succeeded", customer={"name": "Ann"})
                await post(http, f"{base}/webhooks/dodo", body, signed_headers(body, "msg_browser"))
            await page.goto(f"{base}/console/try")
            shown = await page.evaluate("[...document.querySelectorAll('#event_type option')].map(o => o.value)")
            assert shown == list(samples.EVENT_TYPES)
            assert "return webhook" in await page.evaluate("document.getElementById('script').value")
            # pick a sample and a variant, type a script, preview
            await page.evaluate(
                "(() => { const s = document.getElementById('event_type'); s.value = 'payment.succeeded';"
                " s.dispatchEvent(new Event('change')); })()"
            )
            await page.evaluate(f"document.getElementById('variant').value = {json.dumps(variant)}")
            await page.type_into("script", BROKEN)
            assert "edited" in await page.evaluate("document.getElementById('script-state').textContent")
            await page.evaluate("document.getElementById('run').click()")
            line = await page.wait("document.getElementById('error-line').textContent")
            assert line == " at line 3"
            assert "TypeError" in await page.evaluate("document.getElementById('error-text').textContent")
            assert "p.total.amount" in await page.evaluate("document.getElementById('error-code').textContent")
            await page.type_into("script", GOOD)
            await page.evaluate("document.getElementById('run').click()")
            await page.wait("document.getElementById('verdict').textContent === 'would send'")
            payload = json.loads(await page.evaluate("document.getElementById('payload').textContent"))
            assert set(payload) == {"amount", "customer_name"}
            assert (await page.evaluate("document.getElementById('schema-verdict').textContent")).startswith("fits")
            rows = "[...document.querySelectorAll('#diff tr')]"
            diff = await page.evaluate(f"{rows}.map(r => r.cells[0].textContent + ' ' + r.cells[1].textContent)")
            assert "amount added" in diff and "data removed" in diff
            headers = await page.evaluate("document.getElementById('headers').textContent")
            assert "Bearer ***" in headers and "test-token" not in headers
            # a stored event, then send a test and see the job's outcome
            await page.type_into("event_id", "msg_browser")
            await page.evaluate("document.getElementById('run').click()")
            await page.wait("document.getElementById('payload').textContent.includes('Ann')")
            await page.evaluate("document.getElementById('send').click()")
            await page.wait("document.getElementById('test-state').textContent === 'success'", timeout=20)
            detail = await page.evaluate("document.getElementById('test-detail').textContent")
            assert '"booked": 4999' in detail.replace('"booked":4999', '"booked": 4999')
            assert "payments.js" in await page.evaluate("document.getElementById('save-file').textContent")
            await page.screenshot(shot)
            job_id = await page.evaluate("document.getElementById('test-job').textContent")
            await page.goto(f"{base}/console/events/msg_browser")
            timeline = await page.evaluate("document.body.innerText")
            assert "Test deliveries" in timeline and job_id in timeline and "TEST" in timeline
            await page.screenshot(shot.with_name("event-with-test.png"))

    asyncio.run(main())
    assert shot.stat().st_size > 20000
