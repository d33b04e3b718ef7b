"""In a real browser, a reader replays a recorded run: pauses, scrubs to the middle and sees fewer requests done
there, steps one event, changes the speed; a compare's permalink replays both sides on one time axis."""
import re

import pytest

from tests.conftest import chromium
from tests.demos.helpers import open_lesson_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LESSON = "/concurrency-and-async/one-cook-many-dishes/"
DONE = re.compile(r"(\d+) of (\d+) requests done")


async def _fill(demo, settings: dict[str, str]) -> None:
    for label, value in settings.items():
        field = demo.get_by_label(label, exact=True)
        if await field.evaluate("el => el.tagName") == "SELECT":
            await field.select_option(value)
        else:
            await field.fill(value)


async def _open_permalink(context, page, link) -> tuple:
    """Follow a run's permalink to its replay page, once the replay has loaded."""
    href = await link.get_attribute("href")
    replay = await context.new_page()
    problems: list[str] = []
    replay.on("pageerror", lambda error: problems.append(str(error)))
    replay.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    await replay.goto(page.url.split(LESSON)[0] + href)
    section = replay.locator('section.demo-replay[data-widget-state="ready"]')
    await section.wait_for(timeout=15_000)
    return replay, section, problems


async def _done_counts(section) -> list[tuple[int, int]]:
    text = await section.locator(".replay-state").inner_text()
    return [(int(done), int(total)) for done, total in DONE.findall(text)]


async def test_a_replay_pauses_scrubs_steps_and_changes_speed(course, site_url):
    async with chromium() as context:
        page, demo, problems = await open_lesson_demo(context, site_url + LESSON)
        await demo.get_by_role("button", name="One run").click()
        # Sequential waits end one after another, so the middle of the run has about half of them done.
        await _fill(demo, {"Mode": "sequential", "Requests": "4", "I/O wait (ms)": "150", "Jitter (ms)": "0"})
        await demo.get_by_role("button", name=re.compile(r"^Run$")).click()
        await page.wait_for_function("el => /Finished in/.test(el.textContent)",
                                     arg=await demo.locator(".demo-status").element_handle(), timeout=20_000)
        replay, section, replay_problems = await _open_permalink(context, page, demo.locator("a.demo-run-link").first)

        back = replay.get_by_role("link", name=re.compile(r"^Back to .+, demo block 1$"))
        assert (await back.get_attribute("href")).endswith(LESSON + "#demo-1")
        assert await _done_counts(section) == [(4, 4)], "the page opens on the whole recording"

        play = section.get_by_role("button", name="Play")
        await play.click()
        await section.get_by_role("button", name="Pause").click()
        status = section.locator(".replay-status")
        assert (await status.inner_text()).startswith("Paused at")

        scrubber = section.get_by_role("slider", name="Time")
        middle = float(await scrubber.get_attribute("max")) / 2
        await scrubber.fill(str(middle))
        [(done, total)] = await _done_counts(section)
        assert total == 4 and 0 < done < 4, "in the middle, some requests are done and some are not"
        assert re.match(r"^[\d.,]+ m?s of [\d.,]+ m?s$", await scrubber.get_attribute("aria-valuetext"))
        assert await section.locator(".replay-readout").inner_text() == await scrubber.get_attribute("aria-valuetext")
        # The measured summary belongs to the run's end (views redraw on the next animation frame).
        await section.locator(".demo-summary").first.wait_for(state="hidden", timeout=5_000)

        events_shown = re.compile(r"(\d+) of \d+ events")
        before = int(events_shown.search(await section.locator(".replay-state").inner_text())[1])
        await section.get_by_role("button", name="Next event").click()
        after = int(events_shown.search(await section.locator(".replay-state").inner_text())[1])
        assert after > before
        await section.get_by_role("button", name="Back one event").click()
        assert int(events_shown.search(await section.locator(".replay-state").inner_text())[1]) == before

        # The keyboard moves the scrubber too: End is the end of the run.
        await scrubber.focus()
        await replay.keyboard.press("End")
        assert await _done_counts(section) == [(4, 4)]
        await replay.keyboard.press("Home")
        assert all(done == 0 for done, _ in await _done_counts(section)), "at the start nothing is done yet"

        await section.get_by_label("Speed").select_option("2")
        await play.click()
        assert "2× speed" in await status.inner_text()
        await replay.wait_for_function("el => /Replay done/.test(el.textContent)", arg=await status.element_handle(),
                                       timeout=15_000)
        assert await _done_counts(section) == [(4, 4)]
        await section.locator(".demo-summary").first.wait_for(state="visible", timeout=5_000)
        for icon in await section.locator("button svg.demo-svg-icon").all():
            box = await icon.bounding_box()
            assert box and box["width"] >= 10 and box["height"] >= 10
        assert problems == [] and replay_problems == []


async def test_either_permalink_of_a_compare_replays_both_sides_together(course, site_url):
    async with chromium() as context:
        page, demo, problems = await open_lesson_demo(context, site_url + LESSON)
        await _fill(demo, {"Requests, run A": "3", "Requests, run B": "3", "I/O wait (ms), run A": "60",
                           "I/O wait (ms), run B": "60"})
        await demo.get_by_role("button", name="Run both").click()
        await page.wait_for_function("el => /A: finished/.test(el.textContent) && /B: finished/.test(el.textContent)",
                                     arg=await demo.locator(".demo-status").element_handle(), timeout=20_000)
        links = demo.locator("a.demo-run-link")
        for index in (0, 1):
            replay, section, replay_problems = await _open_permalink(context, page, links.nth(index))
            state = await section.locator(".replay-state").inner_text()
            assert state.index("Run A:") < state.index("Run B:")
            assert await _done_counts(section) == [(3, 3), (3, 3)]
            assert await section.locator(".demo-run-strip").count() == 2
            assert await section.get_by_role("slider", name="Time").count() == 1, "one set of controls for both"
            await section.get_by_role("slider", name="Time").fill("0")
            assert all(done == 0 for done, _ in await _done_counts(section))
            assert replay_problems == []
            await replay.close()
        assert problems == []
