"""A reader in a real browser finds the course, a lesson, its heading and contents."""
import pytest

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_reader_follows_a_lesson_link_from_home(course, site_url, page):
    page.goto(site_url + "/")
    first_lesson = course.lessons.published().first()
    page.get_by_role("link", name=first_lesson.title).click()
    page.wait_for_url(f"**{first_lesson.get_absolute_url()}")
    assert page.get_by_role("heading", level=1).inner_text() == first_lesson.title
    toc = page.get_by_role("navigation", name="On this page")
    assert toc.get_by_role("link").count() == len(first_lesson.toc) >= 2


def test_lesson_is_readable_without_javascript(course, site_url, browser):
    context = browser.new_context(java_script_enabled=False, viewport={"width": 360, "height": 800})
    page = context.new_page()
    lesson = course.lessons.published().first()
    page.goto(site_url + lesson.get_absolute_url())
    assert page.get_by_role("heading", level=1).inner_text() == lesson.title
    # No horizontal scrolling at 360 px.
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    context.close()
