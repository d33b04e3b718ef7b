"""Through the real site: a reader runs a demo and posts predictions from the lesson page; the index shows their
progress and Clear removes it; staff then read the counts on the admin statistics page."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import User

from tests.conftest import chromium
from tests.demos.helpers import open_lesson_demo
from tests.learning.conftest import COUNT, DEMO_BODY, TOTAL, make_lesson

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "correct horse battery"

# Runs in the page, as the blocks front end will: the page's own reader token, its own fetch, its own events.
PREDICT = """async ({lessonId, runId}) => {
  const { readerToken } = await import("/static/js/learning/reader.js");
  const post = async (block, answer) => {
    const response = await fetch("/api/predictions/", {method: "POST", headers: {"Content-Type": "application/json"},
      body: JSON.stringify({reader: readerToken(), lesson: lessonId, block, answer, runs: [runId]})});
    const body = await response.json();
    document.dispatchEvent(new CustomEvent("coursesite:prediction",
      {detail: {block, answer, skipped: answer === null, close: body.close ?? null, runs: [runId]}}));
    return [response.status, body];
  };
  document.dispatchEvent(new CustomEvent("coursesite:demo-finished",
    {detail: {demo: "one-cook", block: "demo-1", runs: [runId], status: "succeeded"}}));
  // A guess that is right on: the run's own measured total (its record, as the replay page reads it).
  const run = await (await fetch(`/api/runs/${runId}/`)).json();
  return [await post("total-time", run.summary.total_ms), await post("how-many", "10")];
}"""


@pytest.fixture
def lesson_and_staff(transactional_db):
    User.objects.create_superuser("author", "author@example.com", PASSWORD)
    lesson = make_lesson(slug="waiting", body=DEMO_BODY, blocks=[TOTAL, COUNT])
    return {"id": lesson.id, "url": lesson.get_absolute_url(), "title": lesson.title}


async def test_predictions_made_on_the_page_show_as_progress_and_in_the_admin(lesson_and_staff, site_url):
    lesson = lesson_and_staff
    async with chromium() as context:
        page, demo, problems = await open_lesson_demo(context, site_url + lesson["url"])
        await demo.get_by_role("button", name=re.compile(r"^Run$")).click()
        status = demo.locator(".demo-status")
        await page.wait_for_function("el => /Finished in/.test(el.textContent)", arg=await status.element_handle(),
                                     timeout=20_000)
        run_id = (await demo.locator("a.demo-run-link").first.get_attribute("href")).strip("/").split("/")[-1]
        posted = await page.evaluate(PREDICT, {"lessonId": lesson["id"], "runId": run_id})
        assert [status for status, _ in posted] == [201, 201], posted
        assert posted[0][1]["close"] is True
        assert posted[1][1] == {"measured": "3", "close": False, "explain": "As many as asked."}
        await page.locator("nav.pager").scroll_into_view_if_needed()
        await page.locator("article .prose > *").last.scroll_into_view_if_needed()
        await page.wait_for_function("() => JSON.parse(localStorage.getItem('coursesite.progress.v1'))"
                                     f"?.lessons?.['{lesson['id']}']?.read === true", timeout=5_000)

        # The lesson shows its own progress under the title, and where the reader left off on it.
        await page.reload()
        here = page.locator("#lesson-progress")
        await here.get_by_text("Your progress here: Read · 1 demo run · 2 predictions (1 close)").wait_for()
        assert await here.get_by_role("link", name="Continue where you left off").get_attribute("href") == "#how-many"

        await page.goto(site_url + "/")
        line = page.locator(f'[data-lesson-progress="{lesson["id"]}"]')
        assert await line.inner_text() == "Read · 1 demo run · 2 predictions (1 close)"
        panel = page.get_by_role("region", name="Your progress")
        continue_link = panel.get_by_role("link", name=f"Continue “{lesson['title']}”")
        assert await continue_link.get_attribute("href") == lesson["url"] + "#how-many"
        await page.screenshot(path=str(_shot("index-progress.png")), full_page=True)
        await panel.get_by_role("button", name="Clear my progress").click()
        await page.get_by_role("status").filter(has_text="Your progress was cleared").wait_for()
        assert await line.is_hidden() and await panel.is_hidden()
        assert await page.evaluate("[localStorage.getItem('coursesite.progress.v1'), localStorage.getItem('coursesite.reader.v1')]") == [None, None]
        assert problems == []

        admin = await context.new_page()
        await admin.goto(site_url + "/admin/login/")
        await admin.get_by_label("Username").fill("author")
        await admin.get_by_label("Password").fill(PASSWORD)
        await admin.get_by_role("button", name="Log in").click()
        await admin.wait_for_url("**/admin/")
        await admin.goto(site_url + f"/admin/lessons/lesson/{lesson['id']}/change/")
        await admin.get_by_role("link", name="Reader predictions").click()
        await admin.get_by_role("link", name="how-many").click()
        figures = admin.locator("dl.figures")
        assert re.sub(r"\s+", " ", await figures.inner_text()).strip() == (
            "Predicted 1 Skipped 0 Close (of the guesses a run measured) 0 of 1 Most common wrong choice Ten (1)")
        chart = admin.get_by_role("img", name="Guessed against measured choices")
        assert "Ten: guessed 1, measured 0" in await chart.locator("desc").text_content()
        assert await admin.get_by_role("row", name="Ten 10 1 0").count() == 1
        await admin.screenshot(path=str(_shot("admin-block-stats.png")), full_page=True)


def _shot(name: str):
    from django.conf import settings

    folder = settings.BASE_DIR / "var" / "screenshots"
    folder.mkdir(parents=True, exist_ok=True)
    return folder / name
