"""A reader in a real browser finds the course, a lesson, its heading and contents."""
import pytest

from tests.conftest import chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def first_lesson(course):
    lesson = course.lessons.published().select_related("course").first()
    return {"title": lesson.title, "url": lesson.get_absolute_url(), "toc": lesson.toc}


async def test_reader_follows_a_lesson_link_from_home(first_lesson, site_url):
    async with chromium() as context:
        page = await context.new_page()
        await page.goto(site_url + "/")
        await page.get_by_role("link", name=first_lesson["title"]).click()
        await page.wait_for_url(f"**{first_lesson['url']}")
        assert await page.get_by_role("heading", level=1).inner_text() == first_lesson["title"]
        toc_links = page.get_by_role("navigation", name="On this page").get_by_role("link")
        assert await toc_links.count() == len(first_lesson["toc"]) >= 2
        await toc_links.nth(1).click()
        assert page.url.endswith("#" + first_lesson["toc"][1]["id"])


async def test_lesson_is_readable_without_javascript_at_360px(first_lesson, site_url):
    async with chromium(java_script_enabled=False, viewport={"width": 360, "height": 800}) as context:
        page = await context.new_page()
        await page.goto(site_url + first_lesson["url"])
        assert await page.get_by_role("heading", level=1).inner_text() == first_lesson["title"]
        assert await page.locator(".prose p").count() > 3
        # Nothing forces sideways scrolling on a small phone.
        assert await page.evaluate("document.documentElement.scrollWidth") <= 360
        # The contents come right after the title and before the lesson's text.
        title, contents, text = [await page.locator(selector).first.bounding_box() for selector in ("h1", ".toc", ".prose")]
        assert title["y"] < contents["y"] < text["y"]
        await page.screenshot(path="var/lesson-360.png")
