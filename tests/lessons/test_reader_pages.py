"""What a reader (and a staff member) sees on the course and lesson pages."""
import pytest
from django.contrib.auth.models import User
from django.test.utils import CaptureQueriesContext
from django.db import connection

from lessons.models import Course, Lesson

pytestmark = pytest.mark.django_db


@pytest.fixture
def three_lessons():
    course = Course.objects.create(title="Async", slug="async")
    first = Lesson.objects.create(course=course, title="First", slug="first", position=10, body="## Alpha\n\ntext\n\n### Beta\n\nmore", published=True)
    draft = Lesson.objects.create(course=course, title="Middle draft", slug="middle", position=20, body="draft body", published=False)
    last = Lesson.objects.create(course=course, title="Last", slug="last", position=30, body="the end", published=True)
    return course, first, draft, last


def test_home_lists_published_lessons_in_order(client, three_lessons):
    page = client.get("/").content.decode()
    assert page.index("First") < page.index("Last")
    assert "Middle draft" not in page


def test_unpublished_lesson_is_404_for_readers(client, three_lessons):
    assert client.get("/async/middle/").status_code == 404


def test_staff_see_a_draft_with_a_banner(client, three_lessons):
    client.force_login(User.objects.create_user("author", password="x", is_staff=True))
    page = client.get("/async/middle/").content.decode()
    assert "Draft" in page and "only staff can see this lesson" in page


def test_lesson_has_toc_breadcrumbs_and_neighbours(client, three_lessons):
    page = client.get("/async/first/").content.decode()
    assert '<a href="#alpha">Alpha</a>' in page and '<a href="#beta">Beta</a>' in page
    assert 'aria-label="Breadcrumb"' in page
    # The draft in between is skipped for readers.
    assert 'rel="next" href="/async/last/"' in page
    assert 'rel="prev"' not in page
    last = client.get("/async/last/").content.decode()
    assert 'rel="prev" href="/async/first/"' in last


def test_reordering_changes_previous_and_next(client, three_lessons):
    course, first, draft, last = three_lessons
    Lesson.objects.filter(pk=last.pk).update(position=5)
    page = client.get("/async/first/").content.decode()
    assert 'rel="prev" href="/async/last/"' in page


def test_lesson_page_reads_stored_html_without_rendering(client, three_lessons, monkeypatch):
    import lessons.rendering

    def refuse(*args, **kwargs):
        raise AssertionError("Markdown rendered during a request")

    monkeypatch.setattr(lessons.rendering, "render_lesson_markdown", refuse)
    monkeypatch.setattr("lessons.models.render_lesson_markdown", refuse)
    with CaptureQueriesContext(connection):
        response = client.get("/async/first/")
    assert response.status_code == 200
    assert '<h2 id="alpha">Alpha</h2>' in response.content.decode()


def test_pages_send_security_headers(client, three_lessons):
    response = client.get("/async/first/")
    assert "script-src 'self'" in response["Content-Security-Policy"]
    assert response["X-Content-Type-Options"] == "nosniff"
    assert response["Referrer-Policy"] == "same-origin"
    assert response["X-Frame-Options"] == "DENY"


def test_readers_get_cached_pages_that_an_edit_refreshes(client, three_lessons, django_assert_max_num_queries):
    course, first, draft, last = three_lessons
    client.get("/async/first/")
    with django_assert_max_num_queries(0):
        assert "Alpha" in client.get("/async/first/").content.decode()
    first.body = "## Gamma\n\nrewritten"
    first.save()
    page = client.get("/async/first/").content.decode()
    assert "Gamma" in page and "Alpha" not in page
    Lesson.objects.filter(pk=draft.pk).update(published=True)
    assert 'rel="next" href="/async/middle/"' in client.get("/async/first/").content.decode()


def _refuse_to_render(*args, **kwargs):
    raise AssertionError("the view ran: this page should have come from the readers' cache")


@pytest.mark.django_db(transaction=True)
async def test_a_cached_page_is_answered_on_the_event_loop_with_every_header(async_client, monkeypatch):
    from lessons.views import LessonDetailView

    course = await Course.objects.acreate(title="Async", slug="async")
    await Lesson.objects.acreate(course=course, title="First", slug="first", position=10, body="## Alpha\n\ntext", published=True)
    first = await async_client.get("/async/first/")  # rendered by the view, then cached
    monkeypatch.setattr(LessonDetailView, "get", _refuse_to_render)
    again = await async_client.get("/async/first/")
    assert again.status_code == 200 and again.content == first.content
    for header in ("Content-Security-Policy", "X-Frame-Options", "X-Content-Type-Options", "Referrer-Policy"):
        assert again[header] == first[header]
    assert "Cookie" in again["Vary"]


def test_a_visitor_with_a_session_never_gets_the_readers_copy(client, three_lessons):
    course, first, draft, last = three_lessons
    assert 'rel="next" href="/async/last/"' in client.get("/async/first/").content.decode()  # now cached
    client.force_login(User.objects.create_user("author", password="x", is_staff=True))
    # Staff see the draft between the two; the readers' cached copy does not have it.
    assert 'rel="next" href="/async/middle/"' in client.get("/async/first/").content.decode()
