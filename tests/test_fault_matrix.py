"""The fault matrix: each way a part of the site dies, with runs in flight, and what the readers saw.

One whole site, started as `make run` starts it and shared with the other fault modules
(tests/conftest.py `fault_site`), serves every case in turn.
Each case has one loop run and two worker runs streaming to three readers
when the fault strikes, and a reader polling a cached lesson page the whole
time. For each fault it asserts: every reader got `finished` (for SIGTERM to
Daphne, `finished` or the socket's close) within 15 s; the lesson page
answered 200 throughout (except while Daphne itself restarts); no run is
left `running` once the site has recovered. The recovery time, from the fault
to the first new worker run that succeeds, is printed and recorded as a
test property (not asserted: it depends on the machine).

The site's supervisor does not restart embedded Redis or PostgreSQL here: the
test starts them again itself, with `coursesite.embedded`, once the readers
have heard the end.
"""
from __future__ import annotations

import asyncio
import os
import signal
import threading
import time

import pytest
import websockets

from tests.site_faults import (
    Reader, eventually, http_get, kill_hard, kill_postgres, kill_redis, restart_postgres, restart_redis,
    run_once, runs_left_running, wait_healthy,
)

pytestmark = [pytest.mark.slow, pytest.mark.own_site]

HEARD_WITHIN_S = 15
LESSON_PAGE = "/concurrency-and-async/the-event-loop/"
# About four seconds on the web loop, and ten on a worker: all three are mid-stream when the fault strikes.
# A worker run goes on without Redis (it records its ending in PostgreSQL), so on kill -9 Redis its reader
# hears "failed" only because the socket's silence window (DEMO_WORKER_SILENCE_S, 5 s) ends before the run
# does. Six seconds of run left that to chance: started a second or more before the fault, as on a busy
# machine, the second run finished first and its reader heard "succeeded" (2026-12-01).
LOOP_RUN = ("one-cook", {"mode": "sequential", "requests": 4, "wait_ms": 1000, "jitter_ms": 0})
WORKER_RUN = ("thread-pool", {"requests": 10, "threads": 1, "wait_ms": 1000})
PROBE_RUN = ("thread-pool", {"requests": 2, "threads": 2, "wait_ms": 50})


@pytest.fixture
def site(fault_site):
    """The fault modules' shared site (tests/conftest.py `fault_site`), whole again before each test."""
    wait_healthy(fault_site)
    return fault_site


class PagePoller:
    """Asks for a cached lesson page every quarter second, from its own thread, and keeps every answer."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.answers: list[tuple[float, int | None]] = []  # (when, status or None when nothing answered)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, name="page-poller", daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            try:
                status, _ = http_get(self.url, timeout=3)
            except OSError:
                status = None
            self.answers.append((time.monotonic(), status))
            self._stop.wait(0.25)

    def __enter__(self) -> PagePoller:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def worker_child_running(site, run_id: str) -> int:
    """The pid of the demo worker's pool process running `run_id` (asked of the worker itself)."""
    from celery import Celery

    inspector = Celery(broker=site.services["REDIS_URL"]).control.inspect(timeout=2)
    for tasks in (inspector.active() or {}).values():
        for task in tasks:
            if task["args"] and task["args"][0] == run_id:
                return int(task["worker_pid"])
    raise AssertionError(f"no worker process reports run {run_id} as active")


async def recovered(site) -> bool:
    """A new worker run (which needs Daphne, PostgreSQL, Redis and a worker) succeeds."""
    finished = await run_once(site, *PROBE_RUN, timeout=20)
    return finished is not None and finished["status"] == "succeeded"


async def heard_end(reader: Reader, reading, *, close_counts: bool) -> str:
    """'finished' or 'closed', whichever the reader got first; raises if neither came in time."""
    try:
        await reader.until_finished(reading, timeout=HEARD_WITHIN_S)
        return "finished"
    except websockets.ConnectionClosed:
        if close_counts:
            return "closed"
        raise


@pytest.mark.parametrize("fault", ["kill -9 a worker child", "kill -9 Redis", "kill -9 PostgreSQL", "SIGTERM Daphne"])
async def test_every_reader_hears_the_end_pages_keep_answering_and_nothing_stays_running(site, fault, record_property):
    deadline = time.monotonic() + 90
    while not await recovered(site):  # the previous case's site is back
        assert time.monotonic() < deadline, "the site did not recover from the previous fault"
        await asyncio.sleep(1)
    assert http_get(site.url + LESSON_PAGE)[0] == 200  # fills the cache
    readers = [Reader(site) for _ in range(3)]
    for reader in readers:
        await reader.__aenter__()
    try:
        loop_reading = await readers[0].start(*LOOP_RUN)
        worker_readings = [await readers[1].start(*WORKER_RUN), await readers[2].start(*WORKER_RUN)]
        readings = [loop_reading, *worker_readings]
        for reader, reading in zip(readers, readings, strict=True):
            await reader.first_events(reading)
        with PagePoller(site.url + LESSON_PAGE) as poller:
            await asyncio.sleep(0.5)
            struck_at = time.monotonic()
            if fault == "kill -9 a worker child":
                kill_hard(worker_child_running(site, worker_readings[0].run_id))
            elif fault == "kill -9 Redis":
                kill_redis(site)
            elif fault == "kill -9 PostgreSQL":
                kill_postgres(site)
            else:
                os.kill(site.pids["daphne"], signal.SIGTERM)
            try:
                endings = await asyncio.gather(*(
                    heard_end(reader, reading, close_counts=fault == "SIGTERM Daphne")
                    for reader, reading in zip(readers, readings, strict=True)))
                heard_at = time.monotonic()
            finally:
                if fault == "kill -9 Redis":
                    restart_redis(site)
                elif fault == "kill -9 PostgreSQL":
                    restart_postgres(site)
            while not await recovered(site):
                assert time.monotonic() - struck_at < 90, f"the site did not recover from {fault}"
                await asyncio.sleep(0.5)
            recovery_s = time.monotonic() - struck_at
    finally:
        for reader in readers:
            await reader.__aexit__()
    print(f"\n{fault}: every reader heard the end {heard_at - struck_at:.1f} s after the fault "
          f"({', '.join(endings)}); a new worker run succeeded {recovery_s:.1f} s after it")
    record_property("recovery_s", round(recovery_s, 1))
    assert heard_at - struck_at < HEARD_WITHIN_S
    if fault != "SIGTERM Daphne":
        assert endings == ["finished"] * 3
    # A worker run lost with its worker, Redis or PostgreSQL is failed; the loop run ended by itself.
    statuses = [reading.finished["status"] if reading.finished else "closed" for reading in readings]
    if fault == "kill -9 a worker child":
        assert statuses == ["succeeded", "failed", "succeeded"], statuses
    elif fault in {"kill -9 Redis", "kill -9 PostgreSQL"}:
        assert statuses == ["succeeded", "failed", "failed"], statuses
    # The lesson page answered throughout; only Daphne's own restart may leave a gap.
    answers = [status for when, status in poller.answers if when >= struck_at]
    assert answers, "the page was never asked for during the fault"
    if fault == "SIGTERM Daphne":
        # `make run` holds the listening socket (ADR 0017): a request made while Daphne restarts waits in the
        # kernel's backlog and the new Daphne answers it, so there may be no gap at all. Where there is one
        # (a request Daphne took and then dropped as it stopped), it holds only failures, and 200s follow it.
        assert answers[-1] == 200, "the page did not answer again after Daphne's restart"
        down = next((index for index, status in enumerate(answers) if status != 200), len(answers))
        back = next((index for index in range(down, len(answers)) if answers[index] == 200), len(answers))
        gap = answers[down:back]
        assert set(gap) <= {None, 503}, gap
        answers = answers[:down] + answers[back:]
    assert set(answers) == {200}, answers
    run_ids = [reading.run_id for reading in readings]
    await eventually(lambda: not runs_left_running(site, run_ids), 30, "no run of the case left running")
