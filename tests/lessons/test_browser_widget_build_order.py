"""A lesson's widgets are built in the order a reader needs them, and all of them are built in the end.

The page does not build every widget in the task that loads it (static/js/demos/build-queue.js): the one a
deep link points at comes first, then those near the viewport, then the rest while the browser is idle.
The order is read from the page itself, as each section's data-widget-state turns "ready".
"""
import pytest

from tests.conftest import chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LESSON = "/concurrency-and-async/race-conditions/"
# Before the page's scripts: note each demo section's id when it becomes ready.
RECORD_ORDER = """
window.builtInOrder = [];
new MutationObserver((changes) => {
  for (const change of changes) {
    const section = change.target;
    if (section.dataset.widgetState === "ready" && section.matches("section.demo") && !builtInOrder.includes(section.id)) {
      builtInOrder.push(section.id);
    }
  }
}).observe(document, { attributes: true, attributeFilter: ["data-widget-state"], subtree: true });
"""


async def test_a_deep_linked_demo_is_built_first_and_every_other_demo_after_it(course, site_url):
    async with chromium() as context:
        await context.add_init_script(RECORD_ORDER)
        page = await context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        await page.goto(site_url + LESSON + "#demo-5")
        sections = await page.locator("section.demo[data-demo]").count()
        assert sections >= 5
        await page.wait_for_function(f"() => window.builtInOrder.length === {sections}", timeout=30_000)
        order = await page.evaluate("() => window.builtInOrder")
        assert order[0] == "demo-5", order
        assert sorted(order) == sorted(f"demo-{n}" for n in range(1, sections + 1))
        # The link's target is on screen, built: its Run is there to press.
        run = page.locator("#demo-5").get_by_role("button", name="Run both")
        await run.wait_for()
        assert await run.is_visible()
        # No stray text between a widget's parts (a missing part once showed as the word "null").
        stray = await page.evaluate("""() => [...document.querySelectorAll("section.demo")].flatMap(
            (section) => [...section.childNodes].filter((node) => node.nodeType === 3 && node.textContent.trim())
              .map((node) => `${section.id}: ${node.textContent.trim()}`))""")
        assert stray == []
        assert problems == []
