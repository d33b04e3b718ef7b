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
import asyncio
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
# Reader pages scanned at once, each in its own tab: most of a demo run is the server waiting, so one page's
# wait covers another's scan.
PAGES_AT_ONCE = 3
MAX_WORKER_RUNS = "48"
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
THEME_SETTLED = """new Promise(requestAnimationFrame).then(() => Promise.all(document.getAnimations()
  .filter((animation) => animation instanceof CSSTransition).map((animation) => animation.finished.catch(() => null)))).then(() => null)"""
ENDED = "el => !/Running…|Starting…|^Ready\\.$/.test(el.textContent.trim())"


@pytest.fixture
def pages(course):
    User.objects.create_superuser("author", "author@example.com", "correct horse battery")
    return ["/"] + [lesson.get_absolute_url() for lesson in course.lessons.published()]


async def _run_every_demo_at_once(page, url: str) -> str | None:
    """Press every widget's Run (or Run both), then wait for each to end; the first permalink any run left.

    Any end counts: a run that failed (a busy machine can starve a CPU-bound demo of its time limit) or was
    turned away (a busy host's lag gate says `busy`) leaves its widget showing that, which must be as readable
    as a success. Only a run that started has a permalink, so a page can end with none.
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
    links = page.locator("a.demo-run-link[href]")
    return await links.first.get_attribute("href") if await links.count() else None


async def _scan_both_themes(page, found: dict[str, list[str]], name: str) -> None:
    """axe on the page as it is, in the light theme and then the dark one (the page follows the system).

    The theme flips in place (no reload): the page's CSS follows `prefers-color-scheme`, and the canvases
    redraw on the media query's change event, which has run by the time the next animation frame is due.
    Colours that ease into the new theme (the admin's links have a transition) are read once they end.
    """
    for theme in ("light", "dark"):
        await page.emulate_media(color_scheme=theme)
        await page.evaluate(THEME_SETTLED)
        found[f"{name} ({theme})"] = await serious_violations(page)
    await page.emulate_media(color_scheme="light")


async def _scan_reader_page(context, url: str, site_url: str,
                            found: dict[str, list[str]]) -> tuple[bool, str | None]:
    """Scan one reader page as loaded and, if it has demos, again after they all ran.

    Whether it had demos, and a permalink one of their runs left (None when every run was turned away).
    """
    page = await context.new_page()
    try:
        await page.goto(site_url + url)
        await page.wait_for_load_state("networkidle")
        await _scan_both_themes(page, found, url)
        if not await page.locator("section.demo[data-demo]").count():
            return False, None
        run_link = await _run_every_demo_at_once(page, url)
        await _scan_both_themes(page, found, url + " after its demos ran")
        elements = await page.evaluate("document.getElementsByTagName('*').length")
        assert elements < MAX_LESSON_ELEMENTS, f"{url} has {elements} elements after its demos ran"
        return True, run_link
    finally:
        await page.close()


async def _scan_admin_lesson_form(browser, site_url: str, found: dict[str, list[str]]) -> None:
    """The admin's lesson form, signed in from a context of its own (reader pages are scanned signed out)."""
    context = await browser.new_context(bypass_csp=True, viewport={"width": 1280, "height": 900})
    try:
        await context.add_init_script(SMALLEST_PRESETS)
        page = await context.new_page()
        await page.goto(site_url + "/admin/login/?next=/admin/lessons/lesson/add/")
        await page.fill("#id_username", "author")
        await page.fill("#id_password", "correct horse battery")
        await page.click("input[type=submit]")
        await page.wait_for_url("**/admin/lessons/lesson/add/")
        await page.locator(".authoring-preview-status", has_text="up to date").wait_for()
        await _scan_both_themes(page, found, "admin lesson form")
    finally:
        await context.close()


async def test_no_serious_axe_finding_on_any_page_before_and_after_its_demos_run(pages, daphne_factory,
                                                                                 celery_worker_process):
    # Several pages at once: the site-wide worker cap must not turn one page's runs away because another
    # page's are in flight (a refused run would end showing `busy`, not its results).
    site_url = daphne_factory(DEMO_RUNS_PER_SOCKET=RUNS_AT_ONCE, DEMO_MAX_WORKER_RUNS=MAX_WORKER_RUNS).url
    found: dict[str, list[str]] = {}
    async with chromium(bypass_csp=True) as context:
        await context.add_init_script(SMALLEST_PRESETS)
        at_once = asyncio.Semaphore(PAGES_AT_ONCE)

        first_run: asyncio.Future[str] = asyncio.get_running_loop().create_future()

        async def scan(url: str) -> bool:
            async with at_once:
                had_demos, link = await _scan_reader_page(context, url, site_url, found)
            if link and not first_run.done():
                first_run.set_result(link)
            return had_demos

        async def scan_replay() -> None:
            """The replay of the first run to end, scanned beside the lessons (it needs no slot of theirs)."""
            run_link = await first_run
            page = await context.new_page()
            try:
                await page.goto(site_url + run_link)
                await page.wait_for_load_state("networkidle")
                await _scan_both_themes(page, found, run_link + " (replay)")
            finally:
                await page.close()

        replay = asyncio.create_task(scan_replay())
        admin = asyncio.create_task(_scan_admin_lesson_form(context.browser, site_url, found))
        try:
            had_demos = await asyncio.gather(*(scan(url) for url in pages))
            ran = [url for url, had in zip(pages, had_demos, strict=True) if had]
            assert len(ran) >= 10, f"only {ran} have demos to run"
            # Every run of every page turned away would leave no replay to scan: say so rather than wait.
            assert first_run.done(), "no run on any page started, so there is no replay to scan"
            await asyncio.gather(replay, admin)
        finally:
            for task in (replay, admin):
                task.cancel()
    problems = {name: found[name] for name in sorted(found) if found[name]}
    assert problems == {}, "\n".join(f"{name}: {line}" for name, lines in problems.items() for line in lines)
