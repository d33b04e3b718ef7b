"""In a real browser, the offload demo's jobs each get a progress bar of their own that fills as the job runs."""
import re

import pytest

from tests.conftest import chromium
from tests.demos.helpers import open_lesson_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LESSON = "/concurrency-and-async/offloading-cpu-work/"


async def test_each_job_gets_a_progress_bar_that_reaches_100(course, site_url, celery_worker_thread, reset_worker_cache):
    async with chromium() as context:
        page, demo, problems = await open_lesson_demo(context, site_url + LESSON)
        await demo.get_by_role("button", name="One run").click()
        # Inline: the sandbox web server runs the jobs itself, so no offload-jobs worker is needed.
        await demo.get_by_role("combobox", name="Where the job runs", exact=True).select_option("inline")
        await demo.get_by_role("spinbutton", name="Jobs", exact=True).or_(demo.get_by_role("textbox", name="Jobs", exact=True)).fill("2")
        await demo.get_by_role("spinbutton", name="Job cost (ms of CPU)", exact=True).or_(demo.get_by_role("textbox", name="Job cost (ms of CPU)", exact=True)).fill("60")
        await demo.get_by_role("button", name=re.compile(r"^Run$")).click()
        status = demo.locator(".demo-status")
        await page.wait_for_function("el => /Finished in/.test(el.textContent)", arg=await status.element_handle(), timeout=60_000)

        jobs = demo.get_by_role("list", name="Progress of each job")
        bars = jobs.get_by_role("progressbar")
        assert await bars.count() == 2
        for index in range(2):
            bar = bars.nth(index)
            assert await bar.get_attribute("aria-valuenow") == "100"
            assert re.match(rf"^job {index + 1} · web server · pid \d+$", await bar.get_attribute("aria-label"))
            assert await bar.get_attribute("aria-valuetext") == "done, 20 of 20"
        assert await jobs.get_by_text("done", exact=True).count() == 2
        assert problems == []
