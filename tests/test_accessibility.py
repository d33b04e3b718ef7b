"""axe-core finds nothing serious or critical (nor a skipped heading level) on the site's pages, in both themes.

Every reader page (index, lessons, reference pages) is scanned as it loads, in
each theme. On every lesson with demos, from that same page load, all its demos
then run at once, each at its smallest preset (the `smoke_params` the demo
declares, put into the page's presets before its scripts read them), and the page
is scanned again in both themes: the widgets then carry summaries, legends,
charts and run links. So are the replay page of one of those runs and the
admin's lesson form. A lesson page also stays under 3,000 elements after its
demos ran (timelines live on canvas, tables and source panels are built on
demand). Step-mode widgets are scanned as built, not stepped.
"""
import json
import re

import pytest
from django.contrib.auth.models import User

from demos.registry import library_demos
from tests.accessibility import serious_violations
from tests.conftest import chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

MAX_LESSON_ELEMENTS = 3_000
# All of a page's demos run at once from its one socket (the site's default is 2 runs per socket).
RUNS_AT_ONCE = "16"
SMALLEST = {demo.slug: dict(getattr(demo, "smoke_params", {})) for demo in library_demos()}
# Runs in the page before its own scripts: each demo section's presets become the demo's smallest
# parameters as the parser adds the section (the widget reads them when it is built). What a compare
# contrasts (the keys its two presets differ in) stays as the lesson wrote it.
SMALLEST_PRESETS = f"const smallest = {json.dumps(SMALLEST)};" + """
function shrink(section) {
  const configs = JSON.parse(section.dataset.configs || "[]");
  const list = configs.length ? configs : [{}];
  const keys = new Set(list.flatMap((config) => Object.keys(config)));
  const contrasted = [...keys].filter((key) => new Set(list.map((config) => JSON.stringify(config[key]))).size > 1);
  const small = Object.fromEntries(Object.entries(smallest[section.dataset.demo] || {}).filter(([key]) => !contrasted.includes(key)));
  section.dataset.configs = JSON.stringify(list.map((config) => ({ ...config, ...small })));
  section.dataset.smallest = "yes";
}
new MutationObserver((changes) => {
  for (const change of changes) for (const node of change.addedNodes) {
    if (node instanceof HTMLElement && node.matches("section.demo[data-demo]") && !node.dataset.smallest) shrink(node);
  }
}).observe(document, { childList: true, subtree: true });
"""
ENDED = "el => !/Running…|Starting…|^Ready\\.$/.test(el.textContent.trim())"


@pytest.fixture
def pages(course):
    User.objects.create_superuser("author", "author@example.com", "correct horse battery")
    return ["/"] + [lesson.get_absolute_url() for lesson in course.lessons.published()]


async def _run_every_demo_at_once(page, url: str) -> str:
    """Press every widget's Run (or Run both), then wait for each to end; the last run's permalink.

    Any end counts: a run that failed (a busy machine can starve a CPU-bound demo of its time limit) leaves
    its widget showing the failure, which must be as readable as a success.
    """
    await page.wait_for_function(
        "[...document.querySelectorAll('section.demo')].every(s => s.dataset.widgetState === 'ready')", timeout=30_000)
    widgets = page.locator("section.demo-widget")
    count = await widgets.count()
    for index in range(count):
        await widgets.nth(index).get_by_role("button", name=re.compile(r"^(Run|Run both)$")).click()
    for index in range(count):
        widget = widgets.nth(index)
        status = widget.locator(".demo-status")
        try:
            await page.wait_for_function(ENDED, arg=await status.element_handle(), timeout=60_000)
        except Exception:
            raise AssertionError(f"{url} demo {index + 1} did not end: {await status.inner_text()!r}, "
                                 f"{await widget.locator('.demo-alert').all_inner_texts()}") from None
    assert await page.locator("section.demo[data-demo]:not([data-smallest])").count() == 0
    return await page.locator("a.demo-run-link").last.get_attribute("href")


async def _scan_both_themes(page, found: dict[str, list[str]], name: str) -> None:
    """axe on the page as it is, in the light theme and then the dark one (the page follows the system)."""
    for theme in ("light", "dark"):
        await page.emulate_media(color_scheme=theme)
        await page.wait_for_timeout(50)  # the theme's media-query listeners repaint first
        found[f"{name} ({theme})"] = await serious_violations(page)
    await page.emulate_media(color_scheme="light")


async def test_no_serious_axe_finding_on_any_page_before_and_after_its_demos_run(pages, daphne_factory,
                                                                                 celery_worker_process):
    site_url = daphne_factory(DEMO_RUNS_PER_SOCKET=RUNS_AT_ONCE).url
    found: dict[str, list[str]] = {}
    ran: list[str] = []
    run_link = None
    async with chromium(bypass_csp=True) as context:
        await context.add_init_script(SMALLEST_PRESETS)
        page = await context.new_page()
        for url in pages:
            await page.goto(site_url + url)
            await page.wait_for_load_state("networkidle")
            await _scan_both_themes(page, found, url)
            if not await page.locator("section.demo[data-demo]").count():
                continue
            run_link = await _run_every_demo_at_once(page, url)
            ran.append(url)
            await _scan_both_themes(page, found, url + " after its demos ran")
            elements = await page.evaluate("document.getElementsByTagName('*').length")
            assert elements < MAX_LESSON_ELEMENTS, f"{url} has {elements} elements after its demos ran"
        assert len(ran) >= 10, f"only {ran} have demos to run"
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
