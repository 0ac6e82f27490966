"""The console's own forms, submitted by a real browser: they must pass the console's cross-site checks."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from tests import cdp
from tests.helpers import config_text, free_port, running_server, settings_for

TOKEN = "forms-admin-token-1234"


@pytest.mark.skipif(cdp.CHROMIUM is None, reason="Chromium is installed by .ci/run (Debian package chromium)")
def test_chromium_logs_in_and_out_through_the_forms(tmp_path: Path):
    """Under `Referrer-Policy: no-referrer` Chromium sends `Origin: null` with a form, which the CSRF check refuses:
    the console could not be logged into from a browser."""
    settings = settings_for(config_text(tmp_path / "h.db", free_port(), admin_token=TOKEN), tmp_path)

    async def main() -> None:
        async with running_server(settings) as base, cdp.browser() as page:
            await page.goto(f"{base}/console/login")
            await page.evaluate(f"document.querySelector('input[name=token]').value = {json.dumps(TOKEN)}")
            await page.click("main form button")
            await page.loaded("/console/")
            assert "Events" in await page.text() and "cross_site_request" not in await page.text()
            await page.click("header form button")  # log out
            await page.loaded("/console/login")
            await page.goto("about:blank")
            await page.send("Page.navigate", url=f"{base}/console/rejections")
            await page.loaded("/console/login")  # the session is gone: back to the login form

    asyncio.run(main())
