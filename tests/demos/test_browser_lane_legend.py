"""In a browser: the legend lists exactly the lane states a run drew, and the summary leads with a few numbers.

The await-race's locked mode is the run that needs the new `lock-wait`
state: tasks queue for the asyncio.Lock. The legend is checked against the
states in the run's own recording (GET /api/runs/<id>/), so it cannot pass by
listing every state there is.
"""
import json
import re

import pytest

from tests.conftest import chromium
from tests.demos.helpers import open_lesson_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LESSON = "/concurrency-and-async/race-conditions/"


async def test_locked_await_race_legend_and_summary(course, site_url, tmp_path):
    async with chromium() as context:
        page, _, problems = await open_lesson_demo(context, site_url + LESSON)
        demo = page.locator("section.demo", has=page.get_by_role("heading", name="A race condition across an await")).first
        await demo.locator("xpath=.").and_(page.locator('[data-widget-state="ready"]')).wait_for(timeout=15_000)
        await demo.get_by_role("button", name="One run").click()
        await demo.get_by_role("combobox", name="Mode").select_option("locked")
        await demo.get_by_role("button", name=re.compile(r"^Run$")).click()
        status = demo.locator(".demo-status")
        await page.wait_for_function("el => /Finished in/.test(el.textContent)", arg=await status.element_handle(), timeout=20_000)

        run_path = await demo.locator("a.demo-run-link").first.get_attribute("href")
        recording = await page.evaluate("url => fetch(url).then((response) => response.json())", "/api" + run_path)
        drawn = {event["state"] for event in recording["events"] if event["kind"] == "state"} - {"done"}
        assert drawn == {"running", "waiting", "lock-wait"}, json.dumps(recording)[:500]
        legend = demo.locator(".demo-legend .demo-legend-item")
        assert set(await legend.evaluate_all("items => items.map((item) => item.dataset.state)")) == drawn
        assert await legend.count() == len(drawn)
        assert "waiting for a lock" in await demo.locator(".demo-legend").inner_text()

        card = demo.locator(".demo-summary").first
        numbers = card.locator(".demo-headline-item")
        assert 1 <= await numbers.count() <= 3
        assert await numbers.first.locator("dt").inner_text() == "Increments lost"
        assert await numbers.first.locator("dd").inner_text() == "0"
        details = card.locator("details.demo-summary-details")
        assert await details.count() == 1 and await details.get_attribute("open") is None
        assert not await card.locator(".demo-summary-table").is_visible()  # behind the disclosure
        await details.locator("summary").click()
        assert await card.get_by_role("rowheader", name="Turns between writers").is_visible()
        await demo.screenshot(path=tmp_path / "await-race-locked.png")
        assert problems == []
