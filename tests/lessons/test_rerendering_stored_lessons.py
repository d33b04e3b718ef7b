"""`load_course` (run by `make run`) renders stored lessons again, so a renderer fix reaches old pages."""
import pytest
from django.core.management import call_command

from lessons.models import Course, Lesson

pytestmark = pytest.mark.django_db


def test_stale_html_is_rendered_again_and_a_rejected_body_keeps_its_page(capsys):
    course = Course.objects.create(title="Async", slug="async")
    fresh = Lesson.objects.create(course=course, title="Fresh", slug="fresh", body="## Why `await`\n\nText.")
    Lesson.objects.filter(pk=fresh.pk).update(body_html="<p>old</p>", toc=[])
    broken = Lesson.objects.create(course=course, title="Broken", slug="broken", body="Fine.")
    Lesson.objects.filter(pk=broken.pk).update(body="```demo no-such-demo\n```\n", body_html="<p>kept</p>")

    call_command("load_course")

    fresh.refresh_from_db()
    assert '<h2 id="why-await">' in fresh.body_html and fresh.toc[0]["html"] == "Why <code>await</code>"
    assert Lesson.objects.get(pk=broken.pk).body_html == "<p>kept</p>"
    assert "kept the old page of Broken" in capsys.readouterr().err
