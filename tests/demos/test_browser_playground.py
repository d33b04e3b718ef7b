"""In a real browser: a reader opens a demo's program with "Edit and run", runs it in the sandbox, sees its output
and a lane per task with the code panel marking a line, and the run's permalink shows the program."""
import re

import pytest

from tests.conftest import chromium
from tests.demos.helpers import open_lesson_demo

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_thread")]

LESSON = "/concurrency-and-async/one-cook-many-dishes/"


async def test_edit_and_run_from_a_demo_block_runs_the_program_and_its_permalink_shows_the_code(course, site_url):
    async with chromium(color_scheme="dark") as context:
        page, demo, problems = await open_lesson_demo(context, site_url + LESSON)
        await demo.get_by_role("link", name=re.compile(r"^Edit and run")).click()
        await page.wait_for_url(re.compile(r"/edit-and-run/\?template=one-cook$"))
        widget = page.locator("section.demo")
        await widget.locator("xpath=.").and_(page.locator('[data-widget-state="ready"]')).wait_for(timeout=15_000)
        editor = widget.get_by_role("textbox", name="Your program")
        assert "async def dish" in await editor.input_value()

        # Keyboard: Tab leaves the editor unless the reader turns on "Tab indents".
        focused = "el => el === document.activeElement"
        await editor.focus()
        await page.keyboard.press("Tab")
        assert not await editor.evaluate(focused)
        await widget.get_by_role("checkbox", name="Tab indents").check()
        await editor.focus()
        await editor.evaluate("el => el.setSelectionRange(0, 0)")
        await page.keyboard.press("Tab")
        assert await editor.evaluate(focused) and (await editor.input_value()).startswith("    import asyncio")
        await page.keyboard.press("Shift+Tab")
        assert (await editor.input_value()).startswith("import asyncio")
        await page.keyboard.press("Escape")
        await page.keyboard.press("Tab")
        assert not await editor.evaluate(focused)

        await widget.get_by_role("button", name=re.compile(r"^Run$")).click()
        status = widget.locator(".demo-status")
        await page.wait_for_function("el => /Finished in/.test(el.textContent)", arg=await status.element_handle(),
                                     timeout=30_000)
        printed = widget.locator(".demo-output-line").filter(has_text="bread: ready").first
        await printed.wait_for()
        assert (await printed.locator(".demo-output-stream").inner_text()) == "out"  # the stream, in words

        follow = widget.get_by_role("combobox", name="Mark the line of")
        tasks = [text for text in await follow.locator("option").all_inner_texts() if "dish()" in text]
        assert len(tasks) >= 2, tasks
        await follow.select_option(label=tasks[0])
        words = await widget.locator(".demo-follow-words").inner_text()
        assert re.match(r"Line \d+: Task-\d+: dish\(\)", words) or "at no line" in words, words
        await follow.select_option(label="the most recent event")
        assert await widget.locator(".demo-code-band").is_visible()
        await page.screenshot(path="/tmp/edit-and-run.png", full_page=True)

        permalink = await widget.locator("a.demo-run-link").first.get_attribute("href")
        assert re.match(r"^/runs/[0-9a-f-]{36}/$", permalink)
        await page.goto(site_url + permalink)
        replay = page.locator("section.demo-replay")
        await replay.locator("xpath=.").and_(page.locator('[data-widget-state="ready"]')).wait_for(timeout=15_000)
        code = replay.locator(".demo-code-view")
        assert "async def dish" in await code.inner_text()
        assert "bread: ready" in await replay.locator(".demo-output").inner_text()
        await page.screenshot(path="/tmp/edit-and-run-replay.png", full_page=True)
        assert problems == []
