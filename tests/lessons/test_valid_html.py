"""Every reader page is well-formed HTML5: a strict parser finds no error in it."""
import html5lib
import pytest

pytestmark = pytest.mark.django_db


def _assert_valid(html: str) -> None:
    parser = html5lib.HTMLParser(strict=True)
    try:
        parser.parse(html)
    except html5lib.html5parser.ParseError as error:
        line = html.splitlines()[parser.errors[0][0][0] - 1] if parser.errors else ""
        raise AssertionError(f"{error}: {line.strip()[:200]}") from None


def test_home_and_every_shipped_lesson_parse_without_errors(client, course):
    _assert_valid(client.get("/").content.decode())
    for lesson in course.lessons.all():
        response = client.get(lesson.get_absolute_url())
        assert response.status_code == 200
        _assert_valid(response.content.decode())


def test_not_found_page_is_plain_and_valid(client):
    response = client.get("/no/such-lesson/")
    assert response.status_code == 404
