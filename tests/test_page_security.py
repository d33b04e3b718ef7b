"""What the pages give away and to whom: debug pages, foreign hosts, foreign origins, password guessing.

Everything but the debug page is asked of the suite's real Daphne
(tests/servers.py), started as `make run` starts it.
"""
from __future__ import annotations

import http.client
import re
import sys
from http.cookiejar import CookieJar
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, Request, build_opener

import pytest
from django.core.management import call_command
from django.test import RequestFactory, override_settings
from django.views.debug import get_default_exception_reporter_filter, technical_500_response

from tests.demos.helpers import handshake_status

DATABASE_PASSWORD = "db-pw-4d1f"
REDIS_PASSWORD = "redis-pw-9c2e"
LESSON_PATH = "/concurrency-and-async/the-event-loop/"
ADMIN_PASSWORD = "correct horse battery"

# Settings shaped as base.py builds them, but with passwords in every server address.
SETTINGS_WITH_PASSWORDS = {
    "DATABASE_URL": f"postgresql://site:{DATABASE_PASSWORD}@db.internal:5432/coursesite",
    "REDIS_URL": f"redis://:{REDIS_PASSWORD}@redis.internal:6379/0",
    "CELERY_BROKER_URL": f"redis://:{REDIS_PASSWORD}@redis.internal:6379/0",
    "CELERY_RESULT_BACKEND": f"redis://:{REDIS_PASSWORD}@redis.internal:6379/0",
    "CACHES": {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache",
                           "LOCATION": f"redis://:{REDIS_PASSWORD}@redis.internal:6379/0"}},
    "CHANNEL_LAYERS": {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer",
                                   "CONFIG": {"hosts": [f"redis://:{REDIS_PASSWORD}@redis.internal:6379/0"]}}},
    # A setting nobody thought to name: still a URL with a password in it.
    "PARTNER_FEED": f"https://feed:{DATABASE_PASSWORD}@partner.example/feed",
}


def debug_page(**extra_settings) -> str:
    """The technical 500 page Django shows with DEBUG on, for an error raised where a URL is a local variable."""
    request = RequestFactory().get("/boom/")
    with override_settings(DEBUG=True, **SETTINGS_WITH_PASSWORDS, **extra_settings):
        get_default_exception_reporter_filter.cache_clear()  # Django keeps the filter it built first
        try:
            broker_url = SETTINGS_WITH_PASSWORDS["CELERY_BROKER_URL"]  # noqa: F841 (shown in the frame's variables)
            raise RuntimeError("the broker went away")
        except RuntimeError:
            return technical_500_response(request, *sys.exc_info()).content.decode()
        finally:
            get_default_exception_reporter_filter.cache_clear()


def test_debug_page_shows_no_server_password():
    page = debug_page()
    assert "the broker went away" in page and "CELERY_BROKER_URL" in page  # it is the debug page, settings listed
    assert DATABASE_PASSWORD not in page
    assert REDIS_PASSWORD not in page


def test_django_default_filter_would_have_shown_them():
    # The check above can fail: with Django's own filter the same page carries the passwords.
    page = debug_page(DEFAULT_EXCEPTION_REPORTER_FILTER="django.views.debug.SafeExceptionReporterFilter")
    assert REDIS_PASSWORD in page and DATABASE_PASSWORD in page


def get_status(server, path: str, host: str) -> int:
    connection = http.client.HTTPConnection(server.host, server.port, timeout=10)
    try:
        connection.request("GET", path, headers={"Host": host})
        response = connection.getresponse()
        response.read()
        return response.status
    finally:
        connection.close()


@pytest.mark.django_db(transaction=True)
def test_a_foreign_host_gets_400_on_every_path_cached_or_not(daphne_server, course):
    own_host = f"{daphne_server.host}:{daphne_server.port}"
    paths = ["/", LESSON_PATH, "/hello", "/healthz", "/static/css/lessons/site.css", "/admin/login/", "/no-such-page/"]
    # Fill the reader-page cache first, so the early (cached) answer is on trial too.
    assert get_status(daphne_server, LESSON_PATH, own_host) == 200
    assert get_status(daphne_server, LESSON_PATH, own_host) == 200
    for path in paths:
        assert get_status(daphne_server, path, "evil.example") == 400, path
        assert get_status(daphne_server, path, f"evil.example:{daphne_server.port}") == 400, path
    assert get_status(daphne_server, LESSON_PATH, own_host) == 200


@pytest.mark.usefixtures("daphne_server")
async def test_websocket_origin_must_match_scheme_host_and_port(daphne_server):
    other_port = daphne_server.port + 1 if daphne_server.port < 65535 else daphne_server.port - 1
    assert await handshake_status(origin="") == 101  # the site's own origin, port and all
    assert await handshake_status(origin=f"http://127.0.0.1:{other_port}") == 403
    assert await handshake_status(origin=f"https://127.0.0.1:{daphne_server.port}") == 403
    assert await handshake_status(origin="http://127.0.0.1") == 403  # port 80 is another origin
    assert await handshake_status(origin=f"http://localhost:{daphne_server.port}") == 403  # the socket went to 127.0.0.1
    assert await handshake_status(origin="null") == 403


class AdminBrowser:
    """A browser's cookie jar and forms against the admin login of the real Daphne."""

    def __init__(self, server) -> None:
        self.server = server
        self.opener = build_opener(HTTPCookieProcessor(CookieJar()))

    def log_in(self, username: str, password: str) -> tuple[int, str, str]:
        """Post the login form; (status, final URL, body)."""
        login_url = self.server.url + "/admin/login/?next=/admin/"
        form = self.opener.open(login_url, timeout=10).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
        data = urlencode({"username": username, "password": password, "csrfmiddlewaretoken": token}).encode()
        try:
            with self.opener.open(Request(login_url, data=data), timeout=10) as response:
                return response.status, response.url, response.read().decode()
        except HTTPError as error:
            return error.code, login_url, error.read().decode()


@pytest.fixture
def admin_user(transactional_db):
    from django.contrib.auth.models import User

    from axes.models import AccessAttempt

    AccessAttempt.objects.all().delete()
    yield User.objects.create_superuser("editor", "editor@example.com", ADMIN_PASSWORD)
    AccessAttempt.objects.all().delete()


def test_wrong_passwords_lock_the_login_out_until_staff_reset_it(daphne_server, admin_user, settings):
    browser = AdminBrowser(daphne_server)
    statuses = [browser.log_in("editor", f"guess-{attempt}")[0] for attempt in range(settings.AXES_FAILURE_LIMIT)]
    assert statuses[:-1] == [200] * (settings.AXES_FAILURE_LIMIT - 1)  # the form again, with its error
    assert statuses[-1] == 429
    # Now even the right password is refused, with a page that says why and what to do.
    status, _url, page = browser.log_in("editor", ADMIN_PASSWORD)
    assert status == 429
    assert "Sign-in locked" in page and "editor" in page and "staff" in page
    # The lock is per username and address: another user from the same address is not locked out.
    assert browser.log_in("someone-else", "whatever")[0] == 200
    call_command("axes_reset")
    status, url, _page = browser.log_in("editor", ADMIN_PASSWORD)
    assert status == 200 and url.endswith("/admin/"), (status, url)
