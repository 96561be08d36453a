"""The console in a real browser: Debian's headless Chromium logs in, searches, opens a message.

Playwright drives ``/usr/bin/chromium`` (never a downloaded browser). The test
checks the rendered DOM (the diagnosis first, the four steps, each attempt's
SMTP conversation, hostile strings as text and no element of theirs) and saves
a screenshot of the timeline as ``docs/console-timeline.png``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.integration.audit.test_api_journeys import delivered_journey, rcpt_address, serving
from tests.integration.audit.test_console_xss import PAYLOADS, SCRIPT, hostile_journey

pytestmark = pytest.mark.integration

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOT = Path(__file__).resolve().parents[3] / "docs" / "console-timeline.png"
TOKEN = "browser-token-0123456789abcdef"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"]

if not CHROMIUM.exists():
    pytest.skip(
        "Debian's chromium is not installed at /usr/bin/chromium (apt-get install chromium)",
        allow_module_level=True,
    )

from playwright.async_api import Page, async_playwright  # noqa: E402


async def step_titles(page: Page) -> list[str]:
    return [t.strip() for t in await page.locator("li.step h2").all_inner_texts()]


async def test_login_search_and_the_timeline_of_a_message(tmp_path):
    # Fixed values, so that the screenshot in docs/ changes only when the page does.
    rcpt, other = "john@partner.test", rcpt_address()
    journey = delivered_journey(rcpt, datetime(2026, 3, 4, 9, 30, tzinfo=UTC), "4Q8ZT1K2M7XHBN3C")
    hostile = hostile_journey(other)
    tokens = tmp_path / "tokens"
    tokens.write_text(f"helpdesk:{TOKEN}\n")
    async with (
        serving(tmp_path, [*journey, *hostile], api_tokens_file=tokens) as served,
        async_playwright() as driver,
    ):
        browser = await driver.chromium.launch(executable_path=str(CHROMIUM), args=ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1000, "height": 900})
            await page.goto(served.base + "/")
            await page.fill("input[name=token]", TOKEN)
            await page.click("#login button[type=submit]")
            await page.wait_for_selector("form.search")

            await page.fill("input[name=rcpt]", rcpt)
            await page.click("form.search button[type=submit]")
            rows = page.locator("#results tbody tr")
            await rows.first.wait_for()
            assert await rows.count() == 1
            row = await rows.first.inner_text()
            assert rcpt in row and "delivered" in row and "250 2.0.0 Ok: queued as 4QXAB12" in row

            await rows.first.locator("a").click()
            await page.wait_for_selector("#diagnosis")
            diagnosis = await page.inner_text("#diagnosis")
            assert diagnosis.startswith("Diagnosis: delivered: accepted by mx.partner.test")
            before_steps = await page.evaluate(
                "document.querySelector('#diagnosis').compareDocumentPosition("
                "document.querySelector('ol.steps')) & Node.DOCUMENT_POSITION_FOLLOWING"
            )
            assert before_steps  # the diagnosis is at the top, before the four steps
            assert await step_titles(page) == [
                "Submitted", "Received", "Filters and queue", "Delivered",
            ]  # fmt: skip
            attempts = page.locator("#step-3 article.entry .title")
            assert [t for t in await attempts.all_inner_texts() if t.startswith("attempt")] == [
                f"attempt 1: deferred for {rcpt}",
                f"attempt 2: delivered for {rcpt}",
            ]
            conversations = await page.locator("#step-3 details.conversation pre").all_inner_texts()
            assert len(conversations) == 2
            assert "451 4.7.1 Greylisted" in conversations[0]
            assert ">>> DATA" in conversations[1]
            step1 = await page.inner_text("#step-1")
            assert "10.1.2.3" in step1 and "TLSv1.3" in step1 and "mary" in step1
            SCREENSHOT.parent.mkdir(exist_ok=True)
            await page.locator("main").screenshot(path=str(SCREENSHOT), scale="css")

            await page.goto(f"{served.base}/messages/{hostile[0].message_id}")
            await page.wait_for_selector("#diagnosis")
            assert await page.locator("main script, main img").count() == 0
            text = await page.inner_text("main")
            for payload in PAYLOADS:
                assert payload in text
            assert SCRIPT in await page.inner_text("#diagnosis")
        finally:
            await browser.close()
    assert SCREENSHOT.stat().st_size > 10_000
