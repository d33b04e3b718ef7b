"""Shared fixtures: a real Celery worker, a real Daphne, a real Chromium.

`make test` has already started throwaway PostgreSQL and Redis servers and put
their URLs in the environment; nothing here fakes them.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path

import pytest
from django.conf import settings

BASE_DIR = Path(settings.BASE_DIR)
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
]


@pytest.fixture(scope="module")
def celery_worker_thread(django_db_setup, django_db_blocker):
    """A real Celery worker (threads pool) consuming from the real Redis broker.

    Module-scoped: tests elsewhere prove what happens when no worker is running.
    """
    from celery.contrib.testing import worker
    from celery.contrib.testing.tasks import ping  # noqa: F401  (start_worker pings it)

    from coursesite.celery import app

    with django_db_blocker.unblock():
        with worker.start_worker(app, pool="threads", concurrency=4, perform_ping_check=True, shutdown_timeout=20, loglevel="WARNING") as running:
            yield running


@pytest.fixture(scope="module")
def celery_worker_process(django_db_setup, django_db_blocker):
    """A real prefork Celery worker in its own process, as `make run` starts it.

    For tests where sharing the test process would distort what is measured
    (the web loop's lag) or where the worker must be killed.
    """
    with django_db_blocker.unblock():
        database_url = _test_database_url()
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "coursesite.settings.test"}
    log_path = BASE_DIR / "var" / f"worker-test-{os.getpid()}.log"
    log = open(log_path, "w")
    name = f"testworker-{os.getpid()}@%h"
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "coursesite", "worker", "-P", "prefork", "-c", "2",
         "--hostname", name, "--loglevel", "INFO", "--without-gossip", "--without-mingle"],
        cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    from coursesite.celery import app

    deadline = time.monotonic() + 60
    while not app.control.ping(timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"celery worker did not start; see {log_path}")
    yield process
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()
    log.close()


@pytest.fixture
def reset_worker_cache():
    """Forget the cached answer to 'is a worker alive?' between tests."""
    from demos import workers

    workers._last_seen_alive = 0.0
    yield
    workers._last_seen_alive = 0.0


def _test_database_url() -> str:
    from django.db import connection

    database = connection.settings_dict
    host = database["OPTIONS"].get("host") or database["HOST"]
    if host.startswith("/"):
        return f"postgresql://{database['USER']}@/{database['NAME']}?host={host}"
    return f"postgresql://{database['USER']}:{database['PASSWORD']}@{host}:{database['PORT'] or 5432}/{database['NAME']}"


@pytest.fixture(scope="session", autouse=True)
def upstream_server():
    """The demos' upstream process, as `make run` starts it; every Daphne of the suite is pointed at it.

    Autouse because in-process consumers (tests.demos.helpers.in_process_socket)
    run network-mode demos in the test process too, which reads the address
    from its own settings.
    """
    from tests.servers import start_upstream, stop_process

    server = start_upstream(base_dir=BASE_DIR)
    previous = settings.DEMO_UPSTREAM_ADDRESS
    settings.DEMO_UPSTREAM_ADDRESS = server.address
    yield server
    settings.DEMO_UPSTREAM_ADDRESS = previous
    stop_process(server.process)


@pytest.fixture(scope="session")
def daphne_server(django_db_setup, django_db_blocker, upstream_server):
    """The suite's real Daphne, started as `make run` starts it, against the test database.

    Every websocket test talks to it (tests.demos.helpers.demo_socket); its
    log (`log_path`, `log_since(mark)`) lets a test assert the server stayed
    free of tracebacks.
    """
    from tests.demos import helpers
    from tests.servers import start_daphne, stop_daphne

    with django_db_blocker.unblock():
        database_url = _test_database_url()
    server = start_daphne(base_dir=BASE_DIR, database_url=database_url,
                          env_overrides={"DEMO_UPSTREAM_ADDRESS": upstream_server.address})
    helpers.default_server = server
    yield server
    helpers.default_server = None
    stop_daphne(server)


@pytest.fixture
def daphne_factory(django_db_setup, django_db_blocker, upstream_server):
    """Start extra Daphnes with environment overrides (other limits); each stops after the test.

    Settings changed in the test process never reach another process, so
    this is how a test gets a server with, say, a site-wide cap of one run.
    """
    from tests.servers import start_daphne, stop_daphne

    with django_db_blocker.unblock():
        database_url = _test_database_url()
    started = []

    def start(**env_overrides: str):
        env = {"DEMO_UPSTREAM_ADDRESS": upstream_server.address, **env_overrides}
        server = start_daphne(base_dir=BASE_DIR, database_url=database_url, env_overrides=env)
        started.append(server)
        return server

    yield start
    for server in started:
        stop_daphne(server)


@pytest.fixture(scope="session")
def site_url(daphne_server):
    """The address of the suite's real Daphne, for browser and HTTP tests."""
    return daphne_server.url


@asynccontextmanager
async def chromium(**context_options):
    """Debian's Chromium driven by Playwright's async API (browser downloads are blocked here).

    Async on purpose: the sync API keeps an event loop running in the test
    thread, which makes every later Django ORM call refuse to run.
    """
    from playwright.async_api import async_playwright

    if not os.path.exists(CHROMIUM):  # noqa: ASYNC240  (one stat before a browser starts)
        pytest.fail(f"Chromium not found at {CHROMIUM}; `make test` installs it on Debian as root (apt-get install chromium).")
    context_options.setdefault("viewport", {"width": 1280, "height": 900})
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        context = await browser.new_context(**context_options)
        try:
            yield context
        finally:
            await context.close()
            await browser.close()


@pytest.fixture
def course(transactional_db):
    """The shipped course, loaded as `make run` loads it (committed, so other processes see it)."""
    from lessons.services import course_load, shipped_courses

    course_load(directory=shipped_courses()[0])
    from lessons.models import Course

    return Course.objects.get()


@pytest.fixture(scope="session", autouse=True)
def close_stray_connections_before_teardown(django_db_setup, django_db_blocker):
    """Async ORM calls leave a connection open in asgiref's executor thread;
    end such sessions so the test database can be dropped cleanly."""
    yield
    from django.db import connection

    from coursesite.loop_db import discard_all

    discard_all()
    with django_db_blocker.unblock():
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        connection.close()


@pytest.fixture(autouse=True)
def fresh_reader_page_cache():
    """Each test has its own database content, so it must not see pages cached by another."""
    from lessons.services import content_changed

    content_changed()


# --- one whole site shared by the fault modules ------------------------------------------------------
#
# tests/demos/test_run_endings_under_faults.py, tests/test_fault_matrix.py and tests/test_faults.py
# each break a part of a site started as `make run` starts it (bench.site.start_site), and each repairs
# what it broke. They asked for the same site (the supervisor's revival of embedded servers held off, so
# the tests revive them themselves), so one is started for the three: its start-up (initdb, migrations,
# collectstatic, two workers) is ~12 s of an idle machine. Their tests are run one after another (see
# pytest_collection_modifyitems below) and the site is stopped right after the last of them, so it never
# idles beside the other modules' measurements.

FAULT_SITE_ENV = {
    "DEBUG": "1",
    # The tests revive the servers they kill themselves; make run's own revival would race them.
    "SUPERVISOR_EMBEDDED_RESTART_DELAY_S": "60",
    # A worker run whose Daphne was stopped frees its site-wide slot only when the slot expires; the
    # modules together stop Daphne with worker runs in flight more often than the default eight allow.
    "DEMO_MAX_WORKER_RUNS": "24",
}
_shared_site_state: dict = {}  # fixture name -> {"site": the running site, "last_user": a test's nodeid}
# Session-scoped whole sites that several modules share; each is stopped right after its last test.
SHARED_SITES = ("fault_site", "two_process_site")


def _uses(item, fixture: str) -> bool:
    return fixture in getattr(item, "fixturenames", ())


def pytest_configure(config):
    config.addinivalue_line("markers", "stops_shared_site: ends the shared site it uses, so it runs after every other "
                                       "test of that site")


@pytest.hookimpl(trylast=True)  # after -k / -m deselection: the order of what will really run
def pytest_collection_modifyitems(session, config, items):
    """Run the tests that share one of SHARED_SITES one after another, where the first of them was; a test
    marked `stops_shared_site` goes last among them."""
    for fixture in SHARED_SITES:
        users = [item for item in items if _uses(item, fixture)]
        if not users:
            continue
        users.sort(key=lambda item: item.get_closest_marker("stops_shared_site") is not None)  # stable
        first = next(index for index, item in enumerate(items) if _uses(item, fixture))
        others = [item for item in items if not _uses(item, fixture)]
        items[:] = others[:first] + users + others[first:]
        _shared_site_state[fixture] = {"last_user": users[-1].nodeid}


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item, nextitem):
    yield
    for state in _shared_site_state.values():
        if item.nodeid == state.get("last_user") and (site := state.pop("site", None)):
            site.stop()


@contextmanager
def _shared_site(fixture: str, prefix: str, extra_env: dict[str, str]):
    """Start a site as `make run` does, for the tests that share `fixture`; stop it after the last of them."""
    from bench.site import start_site

    root = Path(tempfile.mkdtemp(prefix=prefix, dir=BASE_DIR / "var"))
    state = _shared_site_state.setdefault(fixture, {})
    try:
        running = start_site(root / "var", extra_env=extra_env)
        state["site"] = running
        yield running
        if state.pop("site", None):
            running.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def fault_site():
    """A whole site (embedded PostgreSQL and Redis, Daphne, both Celery workers, the supervisor), as `make run`
    starts it, shared by the fault tests. Each test repairs what it breaks; `tests.site_faults.wait_healthy`
    waits until it is whole again. Stopped after the last test that uses it.

    Its data lives under var/ as the benchmarks' does, not under pytest's temporary root: pytest makes
    that root private (0700) whenever any pytest starts, which would lock PostgreSQL's user out of it."""
    with _shared_site("fault_site", "fault-site-", FAULT_SITE_ENV) as running:
        yield running


# --- one two-Daphne site shared by tests/test_behind_nginx.py and tests/test_several_web_processes.py ---
#
# Both want `make run WEB_PROCESSES=2`; their other settings agree: TRUSTED_PROXIES=127.0.0.1 changes nothing
# for a client that connects directly (it sends no X-Forwarded-For, so its own address counts), and probing
# every second (three silent probes in a row still mean wedged) only makes a wedge be found sooner. One start
# (~16 s of an idle machine) instead of two. Before each test the modules wait until the supervisor has made
# the site whole again (tests.servers.wait_two_processes_whole); the SIGTERM test of
# tests/test_several_web_processes.py, marked `stops_shared_site`, runs last and ends it.

@pytest.fixture(scope="session")
def two_process_site():
    """A whole site with two Daphnes on one port, as `make run WEB_PROCESSES=2` starts it."""
    from tests.servers import TWO_PROCESS_SITE_ENV

    with _shared_site("two_process_site", "two-web-", TWO_PROCESS_SITE_ENV) as running:
        yield running
