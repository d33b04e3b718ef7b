"""axe-core finds nothing serious or critical on the site's pages, in the light and the dark theme.

Every reader page (index, lessons, reference pages) is scanned as it loads, in
each theme; two lessons are scanned again after every demo on them has run
(the widgets then carry summaries, legends, charts and run links), and so are
the replay page of one of those runs and the admin's lesson form. A lesson page also stays
under 3,000 elements after its demos ran (timelines live on canvas, tables and
source panels are built on demand).
"""
import re

import pytest
from django.contrib.auth.models import User

from tests.accessibility import serious_violations
from tests.conftest import chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

# The lessons whose demos are all run before a second scan (two keep the suite's time down).
RUN_AFTER = ("one-cook-many-dishes", "common-async-mistakes")
MAX_LESSON_ELEMENTS = 3_000


@pytest.fixture
def pages(course):
    User.objects.create_superuser("author", "author@example.com", "correct horse battery")
    lessons = list(course.lessons.published())
    return {"reader": ["/"] + [lesson.get_absolute_url() for lesson in lessons],
            "run_after": {lesson.slug: lesson.get_absolute_url() for lesson in lessons}}


async def _run_every_demo(page) -> str:
    """Press each widget's Run (or Run both) in turn and wait for its end; the last run's permalink."""
    widgets = page.locator("section.demo-widget")
    await widgets.first.wait_for()
    await page.wait_for_function(
        "[...document.querySelectorAll('section.demo')].every(s => s.dataset.widgetState === 'ready')", timeout=30_000)
    for index in range(await widgets.count()):
        widget = widgets.nth(index)
        await widget.get_by_role("button", name=re.compile(r"^(Run|Run both)$")).click()
        status = widget.locator(".demo-status")
        try:
            await page.wait_for_function(
                "el => /Finished in|B: finished|failed|stopped/i.test(el.textContent)",
                arg=await status.element_handle(), timeout=60_000)
        except Exception:
            raise AssertionError(f"demo {index + 1} did not finish: {await status.inner_text()!r}, "
                                 f"{await widget.locator('.demo-alert').all_inner_texts()}") from None
    return await page.locator("a.demo-run-link").last.get_attribute("href")


async def _scan_both_themes(page, found: dict[str, list[str]], name: str) -> None:
    """axe on the page as it is, in the light theme and then the dark one (the page follows the system)."""
    for theme in ("light", "dark"):
        await page.emulate_media(color_scheme=theme)
        await page.wait_for_timeout(50)  # the theme's media-query listeners repaint first
        found[f"{name} ({theme})"] = await serious_violations(page)
    await page.emulate_media(color_scheme="light")


async def test_no_serious_axe_finding_on_any_page_before_and_after_its_demos_run(pages, site_url, celery_worker_process):
    found: dict[str, list[str]] = {}
    async with chromium(bypass_csp=True) as context:
        page = await context.new_page()
        for url in pages["reader"]:
            await page.goto(site_url + url)
            await page.wait_for_load_state("networkidle")
            await _scan_both_themes(page, found, url)
        for slug in RUN_AFTER:
            url = pages["run_after"][slug]
            await page.goto(site_url + url)
            run_link = await _run_every_demo(page)
            await _scan_both_themes(page, found, url + " after its demos ran")
            elements = await page.evaluate("document.getElementsByTagName('*').length")
            assert elements < MAX_LESSON_ELEMENTS, f"{url} has {elements} elements after its demos ran"
        await page.goto(site_url + run_link)
        await page.wait_for_load_state("networkidle")
        await _scan_both_themes(page, found, run_link + " (replay)")

        await page.goto(site_url + "/admin/login/?next=/admin/lessons/lesson/add/")
        await page.fill("#id_username", "author")
        await page.fill("#id_password", "correct horse battery")
        await page.click("input[type=submit]")
        await page.wait_for_url("**/admin/lessons/lesson/add/")
        await page.locator(".authoring-preview-status", has_text="up to date").wait_for()
        await _scan_both_themes(page, found, "admin lesson form")
    problems = {url: lines for url, lines in found.items() if lines}
    assert problems == {}, "\n".join(f"{url}: {line}" for url, lines in problems.items() for line in lines)
