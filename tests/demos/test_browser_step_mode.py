"""In a real browser, a reader schedules two transactions by hand and watches an update get lost."""
import pytest

from tests.conftest import BASE_DIR, chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LESSON = "/concurrency-and-async/race-conditions/"
SCREENSHOTS = BASE_DIR / "var" / "screenshots"


async def _open_stepper(context, site_url):
    page = await context.new_page()
    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    await page.goto(site_url + LESSON)
    # The lesson has more than one step widget; these tests drive the counter race's.
    stepper = page.locator('section.demo-steps[data-demo="counter-race"][data-widget-state="ready"]')
    await stepper.wait_for(timeout=15_000)
    return page, stepper, problems


async def _press(stepper, tx: str, label: str) -> None:
    button = stepper.get_by_role("button", name=f"{tx}: {label}")
    await button.wait_for()
    await stepper.page.wait_for_function("b => !b.disabled", arg=await button.element_handle(), timeout=10_000)
    await button.click()


async def test_reading_twice_then_writing_twice_loses_an_update(course, site_url):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with chromium() as context:
        page, stepper, problems = await _open_stepper(context, site_url)
        assert await stepper.get_by_role("combobox", name="Scenario").input_value() == "read-modify-write"
        await stepper.get_by_role("button", name="Start").click()
        await page.locator('section.demo-steps[data-session-state="open"]').wait_for(timeout=20_000)
        # Only the next valid statement is enabled.
        assert await stepper.get_by_role("button", name="T1: Write n + 1").is_disabled()
        # From the keyboard: focus starts on T1's BEGIN and follows T1's next statement.
        t1_log = stepper.locator('.stepper-tx[data-tx="T1"] .stepper-log')
        await page.keyboard.press("Enter")
        await t1_log.locator(".is-done", has_text="BEGIN ISOLATION LEVEL READ COMMITTED").wait_for(timeout=10_000)
        await page.keyboard.press("Enter")
        await t1_log.locator(".is-done", has_text="n = 0").wait_for(timeout=10_000)
        for tx, label in [("T2", "BEGIN"), ("T2", "Read n"), ("T1", "Write n + 1"), ("T2", "Write n + 1")]:
            await _press(stepper, tx, label)
        t2 = stepper.locator('.stepper-tx[data-tx="T2"]')
        await t2.locator(".stepper-state", has_text="Blocked — waiting for T1's lock").wait_for(timeout=10_000)
        await stepper.screenshot(path=str(SCREENSHOTS / "step-mode-blocked.png"))
        await _press(stepper, "T1", "COMMIT")
        await _press(stepper, "T2", "COMMIT")
        verdict = stepper.locator(".stepper-verdict")
        await verdict.wait_for(state="visible", timeout=10_000)
        assert await verdict.inner_text() == "Both transactions added one, but the counter went from 0 to 1: one update was lost."
        assert await stepper.locator(".stepper-counter-value").inner_text() == "1"
        await stepper.screenshot(path=str(SCREENSHOTS / "step-mode-lost-update.png"))
        assert problems == []


async def test_on_a_narrow_screen_the_columns_stack_and_atomic_update_loses_nothing(course, site_url):
    async with chromium(viewport={"width": 360, "height": 780}, color_scheme="dark") as context:
        page, stepper, problems = await _open_stepper(context, site_url)
        await stepper.get_by_role("combobox", name="Scenario").select_option("atomic-update")
        await stepper.get_by_role("button", name="Start").click()
        for tx, label in [("T1", "BEGIN"), ("T2", "BEGIN"), ("T1", "UPDATE n + 1"), ("T2", "UPDATE n + 1")]:
            await _press(stepper, tx, label)
        await stepper.locator('.stepper-tx[data-tx="T2"].is-blocked').wait_for(timeout=10_000)
        await _press(stepper, "T1", "COMMIT")
        await _press(stepper, "T2", "COMMIT")
        verdict = stepper.locator(".stepper-verdict")
        await verdict.wait_for(state="visible", timeout=10_000)
        assert "from 0 to 2: nothing lost" in await verdict.inner_text()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"the page scrolls sideways at 360 px ({width} px wide)"
        boxes = [await stepper.locator(f'.stepper-tx[data-tx="{tx}"]').bounding_box() for tx in ("T1", "T2")]
        assert boxes[1]["y"] > boxes[0]["y"], "the two columns stack on a phone"
        await stepper.screenshot(path=str(SCREENSHOTS / "step-mode-360-dark.png"))
        assert problems == []
