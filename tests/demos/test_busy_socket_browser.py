"""In a real browser against a real Daphne at its capacity: a page whose socket is turned away says the server
is full, offers a recording of the widget's settings, and connects by itself once there is room.

The per-process gate (DEMO_SOCKETS_PER_PROCESS) answers a socket over capacity with `busy` and
`retry_after_s`, then closes it with 4503. Before the page knew that code it showed "the server closed the
connection (code 4503)" with Run off for good; now it waits the server's seconds and comes back.
"""
import asyncio
import json
import re

import pytest
from websockets.asyncio.client import connect

from tests.conftest import chromium
from tests.demos.helpers import DEMO_PATH, open_lesson_demo, text_matches

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

LESSON = "/concurrency-and-async/one-cook-many-dishes/"


async def _take_the_only_place(server):
    """A socket of the test's own, once the server admits it (a refused one hears `busy` at once)."""
    for _ in range(40):
        socket = await connect(server.ws_url(DEMO_PATH), origin=server.url, open_timeout=20, compression=None)
        try:
            message = json.loads(await asyncio.wait_for(socket.recv(), timeout=1))
        except TimeoutError:
            return socket  # admitted: an admitted socket hears nothing until it asks for a run
        assert message["code"] == "busy", message
        await socket.close()
        await asyncio.sleep(message["retry_after_s"])
    raise AssertionError("the server never admitted the test's socket")


async def test_a_page_turned_away_at_its_socket_offers_a_recording_and_connects_by_itself_once_there_is_room(
        course, daphne_factory):
    server = daphne_factory(DEMO_SOCKETS_PER_PROCESS="1", DEMO_BUSY_RETRY_AFTER_S="1")
    async with chromium() as context:
        # First a compare at the lesson's own settings while the site is free: the recording offered later.
        page, demo, problems = await open_lesson_demo(context, server.url + LESSON)
        await demo.get_by_role("button", name="Run both").click()
        await text_matches(page, demo.locator(".demo-status"), "A: finished in .* B: finished in")
        await page.close()

        holder = await _take_the_only_place(server)
        try:
            page = await context.new_page()
            page.on("pageerror", lambda error: problems.append(str(error)))
            sockets_opened: list[str] = []
            page.on("websocket", lambda socket: sockets_opened.append(socket.url) if DEMO_PATH in socket.url else None)
            await page.goto(server.url + LESSON)
            demo = page.locator("section.demo").first
            notice = demo.locator(".demo-connection")
            await text_matches(page, notice, "as many readers as it can take right now")
            await text_matches(page, notice, r"Retrying in \d+ s\.")
            assert await demo.get_by_role("button", name="Run both").is_disabled()
            assert await demo.locator(".demo-status").inner_text() == "Run is off: not connected to the demo server."
            assert "4503" not in await notice.inner_text()
            watch = demo.get_by_role("button", name=re.compile(r"^Watch a recording of this preset from \d\d:\d\d"))
            await watch.click()
            banner = demo.locator(".demo-recording-banner").first
            await banner.wait_for(state="visible", timeout=10_000)
            assert re.search(r"Recording from \d\d:\d\d, not a live run", await banner.inner_text())
            # Still full: the page tries again by itself and is turned away again, counting down anew.
            for _ in range(100):
                if len(sockets_opened) >= 2:
                    break
                await asyncio.sleep(0.1)
            assert len(sockets_opened) >= 2, sockets_opened
            await text_matches(page, notice, r"Retrying in \d+ s\.")
            assert await demo.get_by_role("button", name="Run both").is_disabled()
        finally:
            await holder.close()
        # Room again: the page connects by itself, with the recording still in view until a live run replaces it.
        run_both = demo.get_by_role("button", name="Run both")
        await page.wait_for_function("(button) => !button.disabled", arg=await run_both.element_handle(), timeout=20_000)
        assert await notice.is_hidden()
        assert await demo.locator(".demo-status").inner_text() == "Ready."
        assert await banner.is_visible()
        await run_both.click()
        await banner.wait_for(state="hidden", timeout=10_000)
        await text_matches(page, demo.locator(".demo-status"), "A: finished in .* B: finished in")
        assert problems == [], problems
