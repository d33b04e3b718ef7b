"""HTML and JSON leave the real Daphne gzipped for clients that accept it, and decompress to the same bytes."""
import gzip
from urllib.request import Request, urlopen

import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def _get(url: str, *, gzip_ok: bool):
    headers = {"Accept-Encoding": "gzip, deflate, br"} if gzip_ok else {}
    with urlopen(Request(url, headers=headers), timeout=10) as response:
        return response.headers, response.read()


def test_lesson_pages_are_compressed_when_rendered_and_when_served_from_the_cache(course, site_url):
    lesson = course.lessons.get(slug="race-conditions")  # the longest page
    url = site_url + lesson.get_absolute_url()
    plain_headers, plain = _get(url, gzip_ok=False)
    assert plain_headers.get("Content-Encoding") is None and b"<h1" in plain
    assert "Accept-Encoding" in plain_headers.get("Vary", "")
    for attempt in ("first render or cache", "served from the cache"):
        headers, body = _get(url, gzip_ok=True)
        assert headers.get("Content-Encoding") == "gzip", attempt
        assert "Accept-Encoding" in headers.get("Vary", "") and "Cookie" in headers.get("Vary", "")
        assert int(headers["Content-Length"]) == len(body) < len(plain) / 2, attempt
        assert gzip.decompress(body) == plain, attempt
        assert headers.get("Content-Security-Policy"), attempt


def test_json_is_compressed_and_small_answers_are_left_alone(site_url):
    headers, body = _get(site_url + "/api/demos/", gzip_ok=True)
    assert headers.get("Content-Encoding") == "gzip" and headers["Content-Type"].startswith("application/json")
    assert gzip.decompress(body).startswith(b"{")
    headers, body = _get(site_url + "/healthz", gzip_ok=True)
    assert headers.get("Content-Encoding") is None
