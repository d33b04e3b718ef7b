"""`make run`'s supervisor keeps the site up: Daphne stops in time, wedges are killed, dead servers come back.

One site is started for the module the way `make run` starts it
(bench.site.start_site); each test breaks a part of it for real (SIGTERM,
SIGSTOP, kill -9) and checks what a reader, an operator watching /healthz,
and the run records saw.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import urlopen

import pytest
import websockets

from bench.site import start_site
from coursesite.embedded import _alive
from tests.test_faults import Reader, http_status, run_to_end, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.own_site]

# Long enough to be in flight when Daphne is stopped, short enough to end soon after.
LOOP_RUN = ("one-cook", {"requests": 5, "wait_ms": 2000, "jitter_ms": 0})
WORKER_RUN = ("thread-pool", {"requests": 6, "threads": 1, "wait_ms": 500})
SHORT_LOOP_RUN = ("one-cook", {"requests": 3, "wait_ms": 50})
SHORT_WORKER_RUN = ("thread-pool", {"requests": 2, "threads": 2, "wait_ms": 50})
STOP_GRACE_S = 6.0  # SUPERVISOR_STOP_GRACE_S's default
# Long enough for a test to see the outage on /healthz before the supervisor repairs it.
EMBEDDED_RESTART_DELAY_S = 3


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    root = tmp_path_factory.mktemp("supervision")
    # A worker run's site-wide slot, when its Daphne is stopped, is freed only when the slot expires
    # (DEMO_SLOT_GRACE_S after its time limit): ten stops in a row need more than the default eight.
    # The ten stops in a row each wait out the restart pause: a short one keeps the module quick.
    running = start_site(root / "var", extra_env={"SUPERVISOR_EMBEDDED_RESTART_DELAY_S": str(EMBEDDED_RESTART_DELAY_S),
                                                  "DEMO_MAX_WORKER_RUNS": "24", "SUPERVISOR_RESTART_DELAY_S": "0.2"})
    yield running
    running.stop()


def supervisor_log(site) -> str:
    assert site.log_path is not None
    return site.log_path.read_text(errors="replace")


def log_since(site, mark: int) -> str:
    """What the supervisor and its children (Daphne's access log among it) wrote after byte `mark`."""
    assert site.log_path is not None
    with open(site.log_path, "rb") as log:
        log.seek(mark)
        return log.read().decode("utf-8", errors="replace")


def health(site) -> tuple[int, dict]:
    status, body = http_status(site.url + "/healthz")
    assert isinstance(body, dict)
    return status, body


def page_answers(site) -> bool:
    try:
        with urlopen(site.url + "/concurrency-and-async/the-event-loop/", timeout=3) as response:
            return response.status == 200
    except (HTTPError, OSError):
        return False


def new_daphne(site, old_pid: int) -> int | None:
    """The pid of a Daphne other than `old_pid` once it serves pages, else None."""
    try:
        pid = site.pids["daphne"]
    except (OSError, ValueError, KeyError):
        return None
    return pid if pid != old_pid and page_answers(site) else None


def first_pid(pid_file: Path) -> int:
    """The pid a server wrote on the first line of its pid file."""
    return int(pid_file.read_text().split()[0])


def run_status(site, run_id: str) -> str:
    return json.loads(http_status(f"{site.url}/api/runs/{run_id}/")[1])["status"]


class Hammer:
    """Two threads fetching a static file and a lesson page in a loop, so requests are in flight at SIGTERM."""

    PATHS = ("/static/css/lessons/site.css", "/concurrency-and-async/the-event-loop/")

    def __init__(self, site) -> None:
        self.site = site
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._fetch, args=(path,), daemon=True) for path in self.PATHS]

    def _fetch(self, path: str) -> None:
        while not self.stopping.is_set():
            try:
                urlopen(self.site.url + path, timeout=2).read()
            except OSError:
                self.stopping.wait(0.05)

    def __enter__(self):
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=5)


async def until_finished_or_closed(reader: Reader, run_ids: set[str], timeout: float) -> str:
    """Read until every run in `run_ids` got `finished` or the socket closed; which one happened."""
    waiting = set(run_ids)
    deadline = time.monotonic() + timeout
    try:
        while waiting:
            message = await reader.next(max(0.1, deadline - time.monotonic()))
            if message["type"] == "finished":
                waiting.discard(message["run"])
    except websockets.ConnectionClosed:
        return "closed"
    return "finished"


async def test_sigterm_with_runs_in_flight_stops_daphne_in_time_ten_times_out_of_ten(site):
    run_ids: list[str] = []
    exit_times: list[float] = []
    with Hammer(site):
        for _attempt in range(10):
            daphne_pid = site.pids["daphne"]
            async with Reader(site) as reader:
                loop_run = await reader.send_run(*LOOP_RUN)
                worker_run = await reader.send_run(*WORKER_RUN)
                assert loop_run["type"] == worker_run["type"] == "accepted", (loop_run, worker_run)
                run_ids += [loop_run["run"], worker_run["run"]]
                stopped_at = time.monotonic()
                os.kill(daphne_pid, signal.SIGTERM)
                ending = await until_finished_or_closed(reader, {loop_run["run"], worker_run["run"]}, timeout=15)
                assert ending in {"finished", "closed"}
            await wait_until(lambda pid=daphne_pid: not _alive(pid), STOP_GRACE_S + 5, f"Daphne {daphne_pid} to exit")
            exit_times.append(time.monotonic() - stopped_at)
            await wait_until(lambda pid=daphne_pid: new_daphne(site, pid), 30, "the supervisor's new Daphne")
    # Every Daphne left by itself, in time: none had to be killed for not answering.
    assert max(exit_times) < STOP_GRACE_S, exit_times
    assert "has not answered" not in supervisor_log(site)
    # No record is left "running": loop runs were recorded at shutdown, worker runs ended in their worker.
    for run_id in run_ids:
        status = await wait_until(lambda run_id=run_id: (s := run_status(site, run_id)) != "running" and s, 40,
                                  f"run {run_id} to end")
        assert status in {"cancelled", "succeeded", "failed", "timed_out"}


async def test_a_wedged_daphne_is_killed_and_replaced(site):
    daphne_pid = site.pids["daphne"]
    # Let the supervisor's probe (every 2 s) see this Daphne answer once: one that never has
    # is given SUPERVISOR_START_TIMEOUT_S to start up before its silence counts. The probe is the
    # only client of /hello, so its answer is the next /hello line in the access log.
    mark = site.log_path.stat().st_size
    await wait_until(lambda: '"GET /hello" 200' in log_since(site, mark), 15, "the supervisor's probe to get an answer")
    os.kill(daphne_pid, signal.SIGSTOP)  # alive, listening, answering nothing
    try:
        stopped_at = time.monotonic()
        await wait_until(lambda: new_daphne(site, daphne_pid), 25, "a new Daphne after the wedge")
        recovered_in = time.monotonic() - stopped_at
    finally:
        if _alive(daphne_pid):
            os.kill(daphne_pid, signal.SIGCONT)
    assert recovered_in < 20, recovered_in
    assert not _alive(daphne_pid)
    assert f"daphne (pid {daphne_pid}) has not answered" in supervisor_log(site)
    assert (await run_to_end(site, *SHORT_LOOP_RUN))["status"] == "succeeded"


async def test_killed_redis_is_reported_then_restarted_and_demos_recover(site):
    pid_file = site.var_dir / "redis" / "redis.pid"
    redis_pid = await asyncio.to_thread(first_pid, pid_file)
    os.kill(redis_pid, signal.SIGKILL)
    status, body = await asyncio.to_thread(health, site)
    assert status == 503 and body["down"] == ["redis"] and body["database"] == "ok", body
    await wait_until(lambda: health(site)[0] == 200, 30, "Redis to be restarted")
    assert await asyncio.to_thread(first_pid, pid_file) != redis_pid
    assert (await run_to_end(site, *SHORT_LOOP_RUN))["status"] == "succeeded"
    await wait_until(lambda: health(site)[1]["celery_workers"] >= 1, 60, "the worker back on Redis")
    assert (await run_to_end(site, *SHORT_WORKER_RUN, timeout=40))["status"] == "succeeded"


async def test_killed_postgres_is_reported_then_restarted_and_demos_recover(site):
    pgdata = site.var_dir / "postgres"
    postmaster_pid = await asyncio.to_thread(first_pid, pgdata / "postmaster.pid")
    os.kill(postmaster_pid, signal.SIGKILL)
    status, body = await wait_until(lambda: (result := health(site))[0] == 503 and result, 10, "/healthz to see it")
    assert "database" in body["down"], body
    await wait_until(lambda: health(site)[0] == 200, 45, "PostgreSQL to be restarted")
    assert await asyncio.to_thread(first_pid, pgdata / "postmaster.pid") != postmaster_pid
    assert await asyncio.to_thread(page_answers, site)
    assert (await run_to_end(site, *SHORT_LOOP_RUN))["status"] == "succeeded"
    assert (await run_to_end(site, *SHORT_WORKER_RUN, timeout=40))["status"] == "succeeded"
