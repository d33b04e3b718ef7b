"""A lesson's headings go down one level at a time: the page's h1, then h2, h3..., never h2 straight to h4.

Screen readers list a page by its headings, and Lighthouse's accessibility score drops for a skipped level.
The renderer gives the levels (lessons.rendering), so an author's `#` or a `####` after a `##` is brought
in line there; the widgets' own titles are checked in the browser (tests/test_accessibility.py).
"""
import re

import pytest

from lessons.rendering import render_lesson_markdown

pytestmark = pytest.mark.django_db

HEADING = re.compile(r"<h([1-6])\b")


def heading_jumps(page_html: str) -> list[str]:
    """Each place a heading is more than one level below the heading before it (the first is an h1 or an h2)."""
    jumps, previous = [], 1
    for match in HEADING.finditer(page_html):
        level = int(match.group(1))
        if level > previous + 1:
            line = page_html.count("\n", 0, match.start()) + 1
            jumps.append(f"h{level} after h{previous} on line {line}")
        previous = level
    return jumps


def test_every_shipped_page_has_headings_that_descend_one_level_at_a_time(client, course):
    found = {}
    for url in ["/"] + [lesson.get_absolute_url() for lesson in course.lessons.all()]:
        response = client.get(url)
        assert response.status_code == 200
        found[url] = heading_jumps(response.content.decode())
    assert {url: jumps for url, jumps in found.items() if jumps} == {}


def test_an_authors_skipped_heading_level_is_rendered_one_level_below_the_heading_before_it():
    rendered = render_lesson_markdown("# Part one\n\nText.\n\n#### A detail\n\n## Part two\n\n### Inner\n\n##### Deep\n")
    assert HEADING.findall(rendered.html) == ["2", "3", "2", "3", "4"]
    # The contents and its links follow the levels the page shows.
    assert [(entry["level"], entry["id"]) for entry in rendered.toc] == [
        (2, "part-one"), (3, "a-detail"), (2, "part-two"), (3, "inner")]
    assert 'id="a-detail"' in rendered.html
