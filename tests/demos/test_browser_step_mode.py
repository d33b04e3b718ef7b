"""In a real browser, a reader plays the step-mode levels: reaches a goal by clicking, steps back, reads why not.

One Chromium for the module (each test takes a fresh context of it); the
transactions are real, on the suite's Daphne and PostgreSQL.
"""
import re
from contextlib import asynccontextmanager

import pytest
import pytest_asyncio

from tests.conftest import BASE_DIR, CHROMIUM, CHROMIUM_ARGS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.asyncio(loop_scope="module")]

LESSON = "/concurrency-and-async/race-conditions/"
SCREENSHOTS = BASE_DIR / "var" / "screenshots"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser():
    """Debian's Chromium, once for the module (see tests/conftest.py `chromium()` for why async)."""
    from playwright.async_api import async_playwright

    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@asynccontextmanager
async def _stepper_page(browser, site_url, demo: str, **context_options):
    """The lesson in a fresh context, its `demo` step widget booted; closed (and its sessions with it) however the test ends."""
    context_options.setdefault("viewport", {"width": 1280, "height": 900})
    context = await browser.new_context(**context_options)
    try:
        page = await context.new_page()
        problems: list[str] = []
        page.on("pageerror", lambda error: problems.append(str(error)))
        page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
        await page.goto(site_url + LESSON)
        # The lesson has one step widget per demo.
        stepper = page.locator(f'section.demo-steps[data-demo="{demo}"][data-widget-state="ready"]')
        await stepper.wait_for(timeout=15_000)
        yield page, stepper, problems
    finally:
        await context.close()


async def _press(stepper, tx: str, label: str) -> None:
    button = stepper.get_by_role("button", name=f"{tx}: {label}")
    await button.wait_for()
    await stepper.page.wait_for_function("b => !b.disabled", arg=await button.element_handle(), timeout=20_000)
    await button.click()


async def _what_the_reader_sees(stepper) -> dict:
    """Both columns' logs and states, the counter and the goal's status, with the session's row ids masked."""
    def masked(texts):
        return [re.sub(r"id = \d+", "id = #", text) for text in texts]

    return {
        tx: masked(await stepper.locator(f'.stepper-tx[data-tx="{tx}"] .stepper-entry').all_inner_texts())
        + [await stepper.locator(f'.stepper-tx[data-tx="{tx}"] .stepper-state').inner_text()]
        for tx in ("T1", "T2")
    } | {
        "counter": await stepper.locator(".stepper-counter-value").inner_text(),
        "goal": await stepper.locator(".stepper-goal-status").inner_text(),
    }


async def test_the_reader_makes_an_increment_vanish_by_clicking_then_steps_back_to_the_state_before(browser, course,
                                                                                                     site_url):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    async with _stepper_page(browser, site_url, "counter-race") as (page, stepper, problems):
        level = stepper.get_by_role("combobox", name="Level")
        assert await level.input_value() == "read-modify-write"
        assert (await stepper.locator(".stepper-goal-text").inner_text()).startswith("Goal: Make an increment vanish")
        assert await stepper.locator(".stepper-goal-status").get_attribute("aria-live") == "polite"
        await stepper.get_by_role("button", name="Start").click()
        await page.locator('section.demo-steps[data-demo="counter-race"][data-session-state="open"]').wait_for(timeout=20_000)
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
        assert await stepper.locator(".stepper-goal-status").inner_text() == "Status: Not yet. Choose which transaction steps next."
        await stepper.screenshot(path=str(SCREENSHOTS / "step-mode-blocked.png"))
        await _press(stepper, "T1", "COMMIT")
        await t2.locator(".stepper-state", has_text="next: COMMIT").wait_for(timeout=10_000)
        before_last = await _what_the_reader_sees(stepper)
        await _press(stepper, "T2", "COMMIT")
        await page.locator('section.demo-steps[data-demo="counter-race"][data-goal-state="reached"]').wait_for(timeout=10_000)
        assert (await stepper.locator(".stepper-goal-status").inner_text()) == (
            "Status: Reached. 2 transactions committed an increment, yet the counter row says 1. One of them "
            "wrote back a number it had read before the other committed, and that overwrote the other's +1."
        )
        verdict = stepper.locator(".stepper-verdict")
        await verdict.wait_for(state="visible", timeout=10_000)
        assert await verdict.inner_text() == "Both transactions added one, but the counter went from 0 to 1: one update was lost."
        await stepper.screenshot(path=str(SCREENSHOTS / "step-mode-goal-reached.png"))
        # Step back, from the keyboard: fresh rows, the first seven statements again, and the same page as before.
        await stepper.get_by_role("button", name="Step back").focus()
        await page.keyboard.press("Enter")
        # The press restarts at once (the goal is open again; Step back waits until the replay is over) ...
        await page.locator('section.demo-steps[data-demo="counter-race"][data-goal-state="pending"]').wait_for(timeout=5_000)
        # ... then, replayed: the button is live again, the focus still on it, and T2's write has its answer.
        await stepper.locator('.stepper-back[aria-disabled="false"]').wait_for(timeout=20_000)
        assert await page.evaluate("document.activeElement.textContent") == "Step back"
        await t2.locator(".stepper-state", has_text="next: COMMIT").wait_for(timeout=10_000)
        assert await _what_the_reader_sees(stepper) == before_last
        await _press(stepper, "T2", "COMMIT")
        await page.locator('section.demo-steps[data-demo="counter-race"][data-goal-state="reached"]').wait_for(timeout=10_000)
        assert problems == []


async def test_the_reader_closes_the_cycle_by_clicking_and_postgresql_breaks_it(browser, course, site_url):
    async with _stepper_page(browser, site_url, "deadlock") as (page, stepper, problems):
        t2_buttons = stepper.locator('.stepper-tx[data-tx="T2"] .stepper-action')
        # Before Start, each column already shows its own order.
        assert await t2_buttons.all_inner_texts() == ["BEGIN", "UPDATE row B", "UPDATE row A", "COMMIT"]
        assert "Make the two transactions deadlock" in await stepper.locator(".stepper-goal-text").inner_text()
        await stepper.get_by_role("button", name="Start").click()
        await page.locator('section.demo-steps[data-demo="deadlock"][data-session-state="open"]').wait_for(timeout=20_000)
        for tx, label in [("T1", "BEGIN"), ("T2", "BEGIN"), ("T1", "UPDATE row A"), ("T2", "UPDATE row B"),
                          ("T1", "UPDATE row B")]:
            await _press(stepper, tx, label)
        await stepper.locator('.stepper-tx[data-tx="T1"].is-blocked').wait_for(timeout=10_000)
        await _press(stepper, "T2", "UPDATE row A")
        error_line = stepper.locator(".stepper-entry.is-error")
        await error_line.wait_for(timeout=15_000)
        said = await error_line.inner_text()
        assert "deadlock detected, SQLSTATE 40P01 (rolled back)" in said and "waits for ShareLock" in said, said
        victim = await error_line.evaluate("entry => entry.closest('.stepper-tx').dataset.tx")
        await page.locator('section.demo-steps[data-demo="deadlock"][data-goal-state="reached"]').wait_for(timeout=10_000)
        goal = await stepper.locator(".stepper-goal-status").inner_text()
        assert goal.startswith(f"Status: Reached. PostgreSQL aborted {victim} with its own error, "
                               "“deadlock detected” (SQLSTATE 40P01)."), goal
        await _press(stepper, "T2" if victim == "T1" else "T1", "COMMIT")
        verdict = stepper.locator(".stepper-verdict")
        await verdict.wait_for(state="visible", timeout=10_000)
        assert (await verdict.inner_text()).startswith("One transaction was rolled back, so only one +1 reached the rows: "
                                                       "row A went from 0 to 1.")
        await stepper.screenshot(path=str(SCREENSHOTS / "step-mode-deadlock.png"))
        assert problems == []


async def test_on_a_narrow_screen_the_fixed_level_ends_without_the_goal_and_says_why(browser, course, site_url):
    async with _stepper_page(browser, site_url, "counter-race", viewport={"width": 360, "height": 780},
                             color_scheme="dark") as (page, stepper, problems):
        await stepper.get_by_role("combobox", name="Level").select_option("atomic-update")
        await stepper.get_by_role("button", name="Start").click()
        for tx, label in [("T1", "BEGIN"), ("T2", "BEGIN"), ("T1", "UPDATE n + 1"), ("T2", "UPDATE n + 1")]:
            await _press(stepper, tx, label)
        await stepper.locator('.stepper-tx[data-tx="T2"].is-blocked').wait_for(timeout=10_000)
        await _press(stepper, "T1", "COMMIT")
        await _press(stepper, "T2", "COMMIT")
        await page.locator('section.demo-steps[data-demo="counter-race"][data-goal-state="missed"]').wait_for(timeout=10_000)
        why = await stepper.locator(".stepper-goal-status").inner_text()
        assert why.startswith("Status: Cannot be reached. No order can do it: the row says 2 after 2 "
                              "commits."), why
        assert "a single statement that holds the row lock" in why
        verdict = stepper.locator(".stepper-verdict")
        await verdict.wait_for(state="visible", timeout=10_000)
        assert "from 0 to 2: nothing lost" in await verdict.inner_text()
        width = await page.evaluate("document.documentElement.scrollWidth")
        assert width <= 360, f"the page scrolls sideways at 360 px ({width} px wide)"
        boxes = [await stepper.locator(f'.stepper-tx[data-tx="{tx}"]').bounding_box() for tx in ("T1", "T2")]
        assert boxes[1]["y"] > boxes[0]["y"], "the two columns stack on a phone"
        await stepper.screenshot(path=str(SCREENSHOTS / "step-mode-360-dark.png"))
        assert problems == []


async def test_the_reader_sells_the_last_mug_twice_by_resuming_tasks_and_reads_why_the_lock_prevents_it(browser, course,
                                                                                                       site_url):
    async with _stepper_page(browser, site_url, "last-mug") as (page, stepper, problems):
        section = 'section.demo-steps[data-demo="last-mug"]'
        assert (await stepper.locator(".stepper-goal-text").inner_text()) == (
            "Goal: Sell the last mug twice: both buyers get a mug and the stock ends at -1.")
        source = stepper.locator(".stepper-source-code")
        assert "if shop.stock > 0:" in await source.inner_text()
        await stepper.get_by_role("button", name="Start").click()
        await page.locator(f'{section}[data-session-state="open"]').wait_for(timeout=20_000)
        t1, t2 = (stepper.locator(f'.stepper-tx[data-tx="{tx}"]') for tx in ("T1", "T2"))
        assert await t2.locator(".stepper-state").inner_text() == "queued: ready to start, not started yet"
        await _press(stepper, "T1", "Run to its first await")
        await t1.locator(".stepper-state", has_text="waiting: suspended at line 3").wait_for(timeout=10_000)
        assert "checked stock 1" in await t1.locator(".stepper-entry").inner_text()
        assert "◀ T1 waiting" in await source.locator('[data-line="3"]').inner_text()
        await _press(stepper, "T2", "Run to its first await")
        await source.locator('[data-line="3"]', has_text="◀ T1 waiting, T2 waiting").wait_for(timeout=10_000)
        await _press(stepper, "T1", "Resume after the await")
        await t1.locator(".stepper-state", has_text="done: returned “got the mug”").wait_for(timeout=10_000)
        assert await stepper.locator(".stepper-counter-value").inner_text() == "0"
        await _press(stepper, "T2", "Resume after the await")
        await page.locator(f'{section}[data-goal-state="reached"]').wait_for(timeout=10_000)
        assert await stepper.locator(".stepper-goal-status").inner_text() == (
            "Status: Reached. The shop's stock is -1 and T1 and T2 both got a mug. Each checked the stock while it was "
            "still 1, then waited at the await; by the time each decremented, its check was stale.")
        assert await stepper.locator(".stepper-counter-value").inner_text() == "-1"
        await stepper.screenshot(path=str(SCREENSHOTS / "step-mode-last-mug-oversold.png"))
        # The lock level: whoever starts first holds the lock across its await, the other waits for it.
        await stepper.get_by_role("combobox", name="Level").select_option("with-lock")
        await page.locator(f'{section}[data-session-state="open"]').wait_for(timeout=20_000)
        await _press(stepper, "T2", "Run to its first await")
        await t2.locator(".stepper-state", has_text="waiting: suspended at line 4").wait_for(timeout=10_000)
        await _press(stepper, "T1", "Run to its first await")
        await t1.locator(".stepper-state", has_text="lock-wait: stopped at line 2 (async with lock:) until T2 releases "
                                                     "the lock").wait_for(timeout=10_000)
        assert await stepper.locator(".stepper-tx.is-blocked").count() == 1
        await stepper.screenshot(path=str(SCREENSHOTS / "step-mode-last-mug-lock-wait.png"))
        await _press(stepper, "T2", "Resume after the await")
        await page.locator(f'{section}[data-goal-state="missed"]').wait_for(timeout=10_000)
        why = await stepper.locator(".stepper-goal-status").inner_text()
        assert why.startswith("Status: Cannot be reached. No order can do it: the stock is 0 and only T2 got the mug."), why
        assert "the second buyer stops at that line in lock-wait" in why and "is already 0" in why
        assert await t1.locator(".stepper-state").inner_text() == "done: returned “sold out” at line 7"
        assert await stepper.locator(".stepper-verdict").inner_text() == "Both buyers have returned: the stock went from 1 to 0."
        assert problems == []
