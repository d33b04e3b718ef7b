"""In a real browser, a reader runs a lesson's demo and reads its summary; compare runs two."""
import re

import pytest

from tests.conftest import chromium
from tests.demos.helpers import open_lesson_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LESSON = "/concurrency-and-async/one-cook-many-dishes/"


async def _open_demo(context, site_url):
    return await open_lesson_demo(context, site_url + LESSON)


async def test_clicking_run_draws_a_timeline_and_a_summary(course, site_url):
    async with chromium() as context:
        page, demo, problems = await _open_demo(context, site_url)
        await demo.get_by_role("button", name="One run").click()
        await demo.get_by_role("textbox", name="Requests").or_(demo.get_by_role("spinbutton", name="Requests")).fill("6")
        await demo.get_by_role("button", name=re.compile(r"^Run$")).click()
        status = demo.locator(".demo-status")
        await page.wait_for_function("el => /Finished in/.test(el.textContent)", arg=await status.element_handle(), timeout=20_000)
        summary = await demo.locator(".demo-summaries").inner_text()
        assert re.search(r"6 requests", summary)
        assert await demo.locator("canvas").count() >= 1
        link = demo.locator("a.demo-run-link").first
        assert re.match(r"^/runs/[0-9a-f-]{36}/$", await link.get_attribute("href"))
        assert problems == []


async def test_compare_runs_both_configurations_side_by_side(course, site_url):
    async with chromium() as context:
        page, demo, problems = await _open_demo(context, site_url)
        await demo.get_by_role("button", name="Run both").click()
        status = demo.locator(".demo-status")
        await page.wait_for_function(
            "el => /A: finished/.test(el.textContent) && /B: finished/.test(el.textContent)",
            arg=await status.element_handle(), timeout=30_000,
        )
        summaries = await demo.locator(".demo-summaries").inner_text()
        assert "sum of their waits" in summaries and "longest single wait" in summaries
        assert await demo.locator("a.demo-run-link").count() == 2
        assert problems == []
