"""An author writes, previews and publishes a lesson through the real admin."""
import re

import pytest
from django.contrib.auth.models import User

from lessons.models import Course, Lesson

pytestmark = pytest.mark.django_db


@pytest.fixture
def author(client):
    User.objects.create_superuser("author", "author@example.com", "correct horse battery")
    return client


def _login(client):
    login_page = client.get("/admin/login/")
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', login_page.content.decode()).group(1)
    response = client.post("/admin/login/?next=/admin/", {"username": "author", "password": "correct horse battery", "csrfmiddlewaretoken": token})
    assert response.status_code == 302


def test_create_preview_publish_then_read_anonymously(author):
    client = author
    _login(client)
    course = Course.objects.create(title="Async", slug="async")
    add_page = client.get("/admin/lessons/lesson/add/").content.decode()
    assert 'id="id_slug"' in add_page and "prepopulated" in add_page.lower()
    response = client.post("/admin/lessons/lesson/add/", {
        "course": course.pk, "kind": "lesson", "title": "Waiting well", "slug": "waiting-well", "position": 10,
        "summary": "How to wait.", "body": "## Why wait\n\nBecause `await`.", "published": "",
    })
    assert response.status_code == 302, response.content.decode()[:2000]
    lesson = Lesson.objects.get(slug="waiting-well")
    assert not lesson.published
    # Preview as staff, invisible to everyone else.
    preview = client.get(lesson.get_absolute_url()).content.decode()
    assert "Draft" in preview and '<h2 id="why-wait">Why wait</h2>' in preview
    client.logout()
    assert client.get(lesson.get_absolute_url()).status_code == 404
    # Publish from the change list action.
    _login(client)
    response = client.post("/admin/lessons/lesson/", {"action": "publish", "_selected_action": [lesson.pk]})
    assert response.status_code == 302
    client.logout()
    page = client.get(lesson.get_absolute_url()).content.decode()
    assert "Waiting well" in page and "Draft" not in page


def test_bad_demo_block_is_a_validation_error_not_a_broken_page(author):
    client = author
    _login(client)
    course = Course.objects.create(title="Async", slug="async")
    response = client.post("/admin/lessons/lesson/add/", {
        "course": course.pk, "kind": "lesson", "title": "Broken", "slug": "broken", "position": 1, "summary": "",
        "body": "Intro\n\n```demo no-such-demo\nmode: fast\n```\n", "published": "on",
    })
    assert response.status_code == 200
    page = response.content.decode()
    assert "there is no demo called" in page and "errorlist" in page
    assert not Lesson.objects.filter(slug="broken").exists()


def test_duplicate_slug_in_a_course_is_refused(author):
    client = author
    _login(client)
    course = Course.objects.create(title="Async", slug="async")
    Lesson.objects.create(course=course, title="One", slug="one", body="x")
    response = client.post("/admin/lessons/lesson/add/", {
        "course": course.pk, "kind": "lesson", "title": "One again", "slug": "one", "position": 2, "summary": "", "body": "y",
    })
    assert response.status_code == 200 and "errorlist" in response.content.decode()


def test_reorder_and_unpublish_from_the_list(author):
    client = author
    _login(client)
    course = Course.objects.create(title="Async", slug="async")
    a = Lesson.objects.create(course=course, title="A", slug="a", position=1, body="a", published=True)
    b = Lesson.objects.create(course=course, title="B", slug="b", position=2, body="b", published=True)
    data = {
        "form-TOTAL_FORMS": 2, "form-INITIAL_FORMS": 2, "form-MIN_NUM_FORMS": 0, "form-MAX_NUM_FORMS": 1000,
        "form-0-id": b.pk, "form-0-position": 1, "form-0-published": "on",
        "form-1-id": a.pk, "form-1-position": 5,
        "_save": "Save",
    }
    response = client.post("/admin/lessons/lesson/", data)
    assert response.status_code == 302, response.content.decode()[:3000]
    a.refresh_from_db()
    b.refresh_from_db()
    assert (a.position, a.published, b.position) == (5, False, 1)


def test_admin_requires_login():
    from django.test import Client

    response = Client().get("/admin/lessons/lesson/")
    assert response.status_code == 302 and "/admin/login/" in response["Location"]
