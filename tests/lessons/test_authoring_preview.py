"""The lesson form previews the Markdown as saving would, and a new lesson goes after the last one."""
import re

import pytest
from django.contrib.auth.models import User

from lessons.admin import PREVIEW_MAX_BODY_CHARS
from lessons.models import Course, Lesson

pytestmark = pytest.mark.django_db

PREVIEW_URL = "/admin/lessons/lesson/preview/"


@pytest.fixture
def author(client):
    User.objects.create_superuser("author", "author@example.com", "correct horse battery")
    client.force_login(User.objects.get(username="author"))
    return client


def test_the_preview_is_the_sanitised_html_saving_would_store(author):
    body = "## Waiting\n\nText with `code`.\n\n<script>alert(1)</script>\n\n[x](javascript:alert(1))\n"
    reply = author.post(PREVIEW_URL, {"body": body}).json()
    assert reply["errors"] == []
    assert '<h2 id="waiting"' in reply["html"] and "<code>code</code>" in reply["html"]
    assert "&lt;script&gt;" in reply["html"] and 'href="javascript' not in reply["html"]
    course = Course.objects.create(title="Async", slug="async")
    lesson = Lesson.objects.create(course=course, title="W", slug="w", body=body)
    assert reply["html"] == lesson.body_html
    assert reply["toc"] == lesson.toc


def test_the_preview_lists_the_bodys_errors_with_their_lines(author):
    body = "Intro\n\n```demo no-such-demo\n```\n\nMore\n\n```demo one-cook\nrequests: lots\n```\n"
    reply = author.post(PREVIEW_URL, {"body": body}).json()
    assert reply["html"] == ""
    messages = [f"line {error['line']}: {error['message']}" if error["line"] else error["message"] for error in reply["errors"]]
    assert any("line 3" in message and "no-such-demo" in message for message in messages), messages


def test_a_huge_body_is_refused_with_its_size(author):
    response = author.post(PREVIEW_URL, {"body": "x" * (PREVIEW_MAX_BODY_CHARS + 1)})
    assert response.status_code == 413
    assert "at most" in response.json()["errors"][0]["message"]


def test_the_preview_is_for_staff_only_and_post_only(client, author):
    assert author.get(PREVIEW_URL).status_code == 405
    client.logout()
    response = client.post(PREVIEW_URL, {"body": "## Hi"})
    assert response.status_code == 302 and "/admin/login/" in response["Location"]


def test_a_new_lesson_is_placed_after_the_last_one(author):
    course = Course.objects.create(title="Async", slug="async")
    other = Course.objects.create(title="Other", slug="other")
    Lesson.objects.create(course=course, title="A", slug="a", position=10, body="a")
    Lesson.objects.create(course=course, title="B", slug="b", position=40, body="b")
    Lesson.objects.create(course=other, title="C", slug="c", position=90, body="c")

    def offered_position(url):
        page = author.get(url).content.decode()
        return int(re.search(r'name="position" value="(\d+)"', page).group(1))

    assert offered_position("/admin/lessons/lesson/add/") == 100
    assert offered_position(f"/admin/lessons/lesson/add/?course={course.pk}") == 50
    assert offered_position(f"/admin/lessons/lesson/add/?course={other.pk}") == 100


def test_the_form_carries_the_preview_pane_and_the_picker_source(author):
    page = author.get("/admin/lessons/lesson/add/").content.decode()
    assert f'data-preview-url="{PREVIEW_URL}"' in page
    assert 'data-demos-url="/api/demos/"' in page
    assert "js/authoring/authoring.js" in page
