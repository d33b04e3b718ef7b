"""An author in a real browser sees the live preview follow the Markdown and inserts a demo with the picker."""
import pytest
from django.contrib.auth.models import User

from tests.conftest import chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def author():
    User.objects.create_superuser("author", "author@example.com", "correct horse battery")


async def test_the_preview_follows_the_text_and_the_picker_inserts_a_demo_block(author, site_url):
    async with chromium() as context:
        page = await context.new_page()
        await page.goto(site_url + "/admin/login/?next=/admin/lessons/lesson/add/")
        await page.fill("#id_username", "author")
        await page.fill("#id_password", "correct horse battery")
        await page.click("input[type=submit]")
        await page.wait_for_url("**/admin/lessons/lesson/add/")

        preview = page.locator(".authoring-preview-body")
        await page.fill("#id_body", "## Why wait\n\nBecause `await` lets others run.\n")
        await preview.locator("h2#why-wait").wait_for()
        assert "Because" in await preview.inner_text()
        await page.locator(".authoring-preview-status", has_text="up to date").wait_for()

        await page.fill("#id_body", "## Why wait\n\n```demo no-such-demo\n```\n")
        errors = page.locator(".authoring-preview-errors")
        await errors.wait_for(state="visible")
        assert "line 3" in await errors.inner_text() and "no-such-demo" in await errors.inner_text()

        await page.fill("#id_body", "## Why wait\n\n")
        await page.select_option("#demo-picker-demo", "one-cook")
        await page.fill("#demo-picker-requests", "25")
        await page.select_option("#demo-picker-mode", "sequential")
        await page.locator("#id_body").evaluate("body => body.setSelectionRange(body.value.length, body.value.length)")
        await page.click("text=Insert at the cursor")
        body = await page.input_value("#id_body")
        assert "```demo one-cook\nmode: sequential\nrequests: 25\n```" in body, body
        await preview.locator("section.demo[data-demo='one-cook']").wait_for()
        assert await errors.is_hidden()
        await page.screenshot(path="var/authoring-preview.png", full_page=True)
