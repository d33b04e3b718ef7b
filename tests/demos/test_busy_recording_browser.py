"""In a real browser against a real Daphne whose one loop place is taken: the reader turned away as busy sees a
countdown and a recording of the same settings, watches it labelled as a recording, and then gets a live run
without pressing anything."""
import re

import pytest

from tests.conftest import chromium
from tests.demos.helpers import demo_socket, open_lesson_demo, receive_until_finished, start_run, text_matches

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LESSON = "/concurrency-and-async/one-cook-many-dishes/"
# Holds the site's only loop place until the test lets go of it (well inside one-cook's time limit).
HOLD = {"requests": 20, "wait_ms": 2000, "jitter_ms": 0, "mode": "sequential"}


async def test_a_reader_turned_away_watches_a_labelled_recording_then_gets_a_live_run_on_its_own(course, daphne_factory):
    server = daphne_factory(DEMO_MAX_LOOP_RUNS="1")
    async with chromium() as context:
        page, demo, problems = await open_lesson_demo(context, server.url + LESSON)
        # From here the page's clock runs as usual, but the test can move it past the countdown instead of waiting.
        await page.clock.install()
        await demo.get_by_role("button", name="One run").click()
        await demo.get_by_role("spinbutton", name="Requests").or_(demo.get_by_role("textbox", name="Requests")).fill("3")
        await demo.get_by_role("spinbutton", name="I/O wait (ms)").or_(demo.get_by_role("textbox", name="I/O wait (ms)")).fill("50")
        run_button = demo.get_by_role("button", name=re.compile(r"^Run$"))
        status = demo.locator(".demo-status")
        # A first run while the site is free: the recording a later reader will be offered.
        await run_button.click()
        await text_matches(page, status, "Finished in")
        recorded = await demo.locator("a.demo-run-link").first.get_attribute("href")
        assert re.fullmatch(r"/runs/[0-9a-f-]{36}/", recorded)

        async with demo_socket(server=server, from_address="127.0.0.9") as holder:
            held = await start_run(holder, "one-cook", HOLD)
            busy = demo.locator(".demo-busy")
            countdown = busy.locator(".demo-busy-countdown")
            # Stop, or a changed setting, calls the retry off: moving the clock past the countdown starts nothing.
            jitter = demo.get_by_role("spinbutton", name="Jitter (ms)").or_(demo.get_by_role("textbox", name="Jitter (ms)"))
            jitter_value = await jitter.input_value()
            for call_off, said in [("stop", "Stopped"), ("change", "Settings changed")]:
                await run_button.click()
                await text_matches(page, countdown, r"^Trying again in \d+ s\.$")
                if call_off == "stop":
                    await demo.get_by_role("button", name="Stop").click()
                else:
                    await jitter.fill(str(int(jitter_value) + 1))
                await text_matches(page, busy.get_by_role("status"), said)
                assert await countdown.inner_text() == ""
                await page.clock.fast_forward(12_000)
                assert await status.inner_text() == "Not started."
            await jitter.fill(jitter_value)
            await run_button.click()
            await busy.wait_for(state="visible", timeout=10_000)
            await text_matches(page, busy.locator(".demo-busy-countdown"), r"^Trying again in \d+ s\.$")
            announced = await busy.get_by_role("status").inner_text()
            assert "Too many demos are running across the site" in announced
            assert re.search(r"Trying again in \d+ s\.", announced)
            # Offered, and taken from the keyboard.
            watch = demo.get_by_role("button", name=re.compile(r"^Watch a recording of this preset from \d\d:\d\d while you wait$"))
            await watch.focus()
            await page.keyboard.press("Enter")
            banner = demo.locator(".demo-recording-banner").first
            await banner.wait_for(state="visible", timeout=10_000)
            assert re.search(r"Recording from \d\d:\d\d, not a live run", await banner.inner_text())
            assert await banner.get_by_role("link").get_attribute("href") == recorded
            summary_label = demo.locator(".demo-recording-summary")
            await summary_label.wait_for(state="visible", timeout=15_000)  # the recording played to its end
            assert "Recording from" in await summary_label.inner_text()
            assert "3 requests" in await demo.locator(".demo-summaries").inner_text()
            assert await busy.is_visible(), "the countdown carries on while the recording plays"

            # The place frees up; the countdown ends and the widget asks again by itself.
            await holder.send_json_to({"type": "cancel", "run": held["run"]})
            await receive_until_finished(holder, held["run"])
        await page.clock.fast_forward(12_000)
        await text_matches(page, status, "Running|Finished in")
        await text_matches(page, status, "Finished in")
        assert await demo.locator(".demo-recording-banner").count() == 0
        assert await busy.is_hidden()
        live = await demo.locator("a.demo-run-link").first.get_attribute("href")
        assert live != recorded and re.fullmatch(r"/runs/[0-9a-f-]{36}/", live)
        assert problems == []
