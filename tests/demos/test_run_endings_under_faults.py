"""A reader always hears how a run ended, whatever part of the site is lost meanwhile.

One site started the way `make run` starts it (conftest's `fault_site`,
shared with the other fault modules) serves the module; each test kills its
PostgreSQL or Redis (kill -9) at a chosen moment of a run and
asserts what the reader received, what the replay shows once the server is
back, and that the worker's pump thread for the run stopped (its own log
line, written as the thread ends). The sweeper's test needs no site: it uses
the suite's own PostgreSQL and Redis.
"""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.conf import settings
from django.utils import timezone

from tests.site_faults import (
    Reader, eventually, kill_postgres, kill_redis, log_lines, restart_postgres, restart_redis, run_once, stored_run,
    wait_healthy,
)

pytestmark = pytest.mark.own_site  # the fault modules' shared site (tests/conftest.py `fault_site`)

SILENCE_S = settings.DEMO_WORKER_SILENCE_S
# A worker run of about four seconds (four one-second blocking requests, one thread).
WORKER_RUN = ("thread-pool", {"requests": 4, "threads": 1, "wait_ms": 1000})
# A worker run long enough that the socket's silence window ends before the demo does.
LONG_WORKER_RUN = ("thread-pool", {"requests": 9, "threads": 1, "wait_ms": 1000})
# A loop run of about three seconds, its waits one after another.
LOOP_RUN = ("one-cook", {"mode": "sequential", "requests": 3, "wait_ms": 1000, "jitter_ms": 0})


@pytest.fixture
def site(fault_site):
    """The fault modules' shared site (tests/conftest.py `fault_site`), whole again before each test."""
    wait_healthy(fault_site)
    return fault_site


def pump_stopped(site, run_id: str) -> bool:
    """The worker's pump thread for `run_id` has ended, and nothing said it outlived its run."""
    lines = [line for line in log_lines(site) if run_id in line]
    assert not [line for line in lines if "outlived" in line], lines
    return any("pump stopped" in line for line in lines)


@pytest.mark.slow
async def test_postgres_lost_mid_run_the_readers_hear_the_end_and_the_replay_matches_once_it_is_back(site):
    async with Reader(site) as reader:
        worker = await reader.start(*WORKER_RUN)
        loop = await reader.start(*LOOP_RUN)
        await reader.first_events(worker)
        await reader.first_events(loop)
        killed_at = time.monotonic()
        kill_postgres(site)
        try:
            loop_end = await reader.until_finished(loop, timeout=10)
            worker_end = await reader.until_finished(worker, timeout=5 + SILENCE_S + 3)
        finally:
            restart_postgres(site)
    # The loop run ended by itself: the reader was told so, not that it failed.
    assert loop_end["status"] == "succeeded", loop_end
    # The worker could not record its ending; the socket ended the run at once, as failed.
    assert worker_end["status"] == "failed", worker_end
    assert "could not be recorded" in worker_end["summary"]["text"]
    assert worker.finished_at - killed_at < 5 + SILENCE_S + 3
    await eventually(lambda: pump_stopped(site, worker.run_id), 10, "the worker's pump to stop")
    # Once PostgreSQL is back, the held endings are written: the replay shows what the readers saw.
    loop_record = await eventually(
        lambda: (record := stored_run(site, loop.run_id)) and record["status"] != "running" and record, 30,
        "the loop run's ending to be recorded")
    assert loop_record["status"] == "succeeded"
    assert loop_record["summary"] == loop_end["summary"]
    assert loop_record["events"] == loop.events and loop.events
    worker_record = await eventually(
        lambda: (record := stored_run(site, worker.run_id)) and record["status"] != "running" and record, 30,
        "the worker run's ending to be recorded")
    assert (worker_record["status"], worker_record["summary"]) == ("failed", worker_end["summary"])


@pytest.mark.slow
async def test_redis_lost_mid_run_the_socket_ends_streaming_and_queued_runs_within_its_silence_window(site):
    async with Reader(site) as reader, Reader(site) as second_reader:
        # Both of the demo worker's pool processes busy, and a third run queued behind them.
        worker = await reader.start(*LONG_WORKER_RUN)
        other = await reader.start(*LONG_WORKER_RUN)
        await reader.first_events(worker)
        await reader.first_events(other)
        queued = await second_reader.start(*LONG_WORKER_RUN)
        killed_at = time.monotonic()
        kill_redis(site)
        try:
            finished = await reader.until_finished(worker, timeout=SILENCE_S + 6)
            await reader.until_finished(other, timeout=SILENCE_S + 6 - (time.monotonic() - killed_at))
            queued_end = await second_reader.until_finished(queued, timeout=SILENCE_S + 6 - (time.monotonic() - killed_at))
        finally:
            restart_redis(site)
    assert finished["status"] == "failed" and "stopped answering" in finished["summary"]["text"], finished
    assert not queued.events and queued_end["status"] == "failed", queued_end
    for reading in (worker, other, queued):
        assert reading.finished_at - killed_at < SILENCE_S + 6
        record = stored_run(site, reading.run_id)
        assert record is not None and record["status"] == "failed"
    # The demos themselves ran on to their end (they could not see the stop flag); then their pumps stopped too.
    await eventually(lambda: pump_stopped(site, worker.run_id) and pump_stopped(site, other.run_id), 20,
                     "the workers' pumps to stop")


@pytest.mark.slow
async def test_redis_lost_with_a_worker_runs_last_message_the_reader_gets_the_stored_ending(site):
    await eventually(lambda: run_once_sync(site), 60, "the worker to take runs again after Redis came back")
    async with Reader(site) as reader:
        worker = await reader.start(*WORKER_RUN)
        await reader.first_events(worker)
        streaming_since = time.monotonic()
        # About a second before the demo's end: it records its ending, but its `finished` is lost.
        await reader.listen(2.6 - (time.monotonic() - streaming_since))
        assert worker.finished is None
        killed_at = time.monotonic()
        kill_redis(site)
        try:
            finished = await reader.until_finished(worker, timeout=SILENCE_S + 6)
        finally:
            restart_redis(site)
    assert finished["status"] == "succeeded", finished  # what the worker stored, not "failed"
    assert worker.finished_at - killed_at < SILENCE_S + 6
    assert stored_run(site, worker.run_id)["summary"] == finished["summary"]
    await eventually(lambda: pump_stopped(site, worker.run_id), 20, "the worker's pump to stop")


def run_once_sync(site) -> bool:
    """One short worker run succeeds (a blocking check for `eventually`)."""
    import asyncio

    finished = asyncio.run(run_once(site, "thread-pool", {"requests": 2, "threads": 2, "wait_ms": 50}, timeout=20))
    return finished is not None and finished["status"] == "succeeded"


@pytest.mark.django_db(transaction=True)
def test_the_sweeper_leaves_a_run_alone_while_its_ending_is_being_retried():
    from coursesite import keys
    from coursesite.redis_clients import sync_redis
    from demos.models import Run
    from demos.services import run_sweep_stale

    old = timezone.now() - timedelta(hours=1)
    retried = Run.objects.create(demo="one-cook", placement="loop", params={}, status=Run.Status.RUNNING)
    abandoned = Run.objects.create(demo="one-cook", placement="loop", params={}, status=Run.Status.RUNNING)
    Run.objects.filter(id__in=[retried.id, abandoned.id]).update(created_at=old)
    sync_redis().set(keys.run_ending_pending(str(retried.id)), 1, ex=60)
    try:
        assert run_sweep_stale(older_than=timedelta(minutes=5)) == 1
        retried.refresh_from_db()
        abandoned.refresh_from_db()
        assert (retried.status, abandoned.status) == (Run.Status.RUNNING, Run.Status.FAILED)
    finally:
        sync_redis().delete(keys.run_ending_pending(str(retried.id)))
    # Once the retry is over (its key gone), a run still left running is swept like any other.
    assert run_sweep_stale(older_than=timedelta(minutes=5)) == 1
    retried.refresh_from_db()
    assert retried.status == Run.Status.FAILED
