"""Faults on a site started the way `make run` starts it: the site stays up and the data whole.

One site (embedded PostgreSQL and Redis, Daphne, a prefork Celery worker, all
under the stack's supervisor: conftest's `fault_site`, shared with the other
fault modules) serves the module; each test breaks one part of it for real,
repairs it, and watches what a reader would see.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from urllib.error import HTTPError
from urllib.request import urlopen

import pytest
import websockets

from tests.site_faults import restart_postgres, wait_healthy

pytestmark = [pytest.mark.slow, pytest.mark.own_site]

LONG_WORKER_RUN = ("thread-pool", {"requests": 20, "threads": 1, "wait_ms": 1000})
SHORT_WORKER_RUN = ("thread-pool", {"requests": 2, "threads": 2, "wait_ms": 50})
LONG_LOOP_RUN = ("one-cook", {"requests": 5, "wait_ms": 2000, "jitter_ms": 0})
SHORT_LOOP_RUN = ("one-cook", {"requests": 3, "wait_ms": 50})


@pytest.fixture
def site(fault_site):
    """The fault modules' shared site (tests/conftest.py `fault_site`), whole again before each test."""
    wait_healthy(fault_site)
    return fault_site


def http_status(url: str) -> tuple[int, dict | str]:
    try:
        with urlopen(url, timeout=10) as response:
            body = response.read().decode()
            return response.status, json.loads(body) if url.endswith("healthz") else body
    except HTTPError as error:
        body = error.read().decode()
        return error.code, json.loads(body) if url.endswith("healthz") else body


async def wait_until(check, timeout_s: float, what: str):
    """Poll a blocking check (an HTTP call, a process table) off the loop until it holds."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            result = await asyncio.to_thread(check)
            if result:
                return result
        except OSError:
            pass
        await asyncio.sleep(0.3)
    raise AssertionError(f"timed out waiting for {what}")


class Reader:
    """A reader's websocket, as the browser widget uses it."""

    def __init__(self, site):
        self.url = site.url.replace("http://", "ws://") + "/ws/demos/"
        self.origin = site.url

    async def __aenter__(self):
        self.socket = await websockets.connect(self.url, origin=self.origin)
        return self

    async def __aexit__(self, *exc):
        await self.socket.close()

    async def send_run(self, demo: str, params: dict) -> dict:
        await self.socket.send(json.dumps({"type": "run", "demo": demo, "params": params, "ref": "fault"}))
        while True:
            message = await self.next(10)
            if message["type"] in {"accepted", "error"}:
                return message

    async def next(self, timeout: float) -> dict:
        return json.loads(await asyncio.wait_for(self.socket.recv(), timeout=timeout))

    async def until_finished(self, run_id: str, timeout: float) -> dict:
        deadline = time.monotonic() + timeout
        while True:
            message = await self.next(max(0.1, deadline - time.monotonic()))
            if message["type"] == "finished" and message["run"] == run_id:
                return message


async def run_to_end(site, demo: str, params: dict, timeout: float = 30) -> dict:
    async with Reader(site) as reader:
        accepted = await reader.send_run(demo, params)
        assert accepted["type"] == "accepted", accepted
        return await reader.until_finished(accepted["run"], timeout)


def worker_count(site) -> int:
    return http_status(site.url + "/healthz")[1]["celery_workers"]


async def test_killed_worker_fails_its_run_and_a_restarted_worker_takes_new_ones(site):
    async with Reader(site) as reader:
        accepted = await reader.send_run(*LONG_WORKER_RUN)
        assert accepted["type"] == "accepted", accepted
        first = await reader.next(15)
        assert first["type"] == "events"
        killed_at = time.monotonic()
        os.killpg(site.pids["celery worker"], signal.SIGKILL)
        finished = await reader.until_finished(accepted["run"], timeout=30)
        elapsed = time.monotonic() - killed_at
    assert finished["status"] == "failed" and "stopped answering" in finished["summary"]["text"]
    assert elapsed < 45  # well within the demo's 45 s time limit
    record = json.loads(http_status(f"{site.url}/api/runs/{accepted['run']}/")[1])
    assert record["status"] == "failed"
    # The supervisor brings a worker back, and it takes new runs.
    await wait_until(lambda: worker_count(site) >= 1, 60, "a restarted worker")
    assert (await run_to_end(site, *SHORT_WORKER_RUN))["status"] == "succeeded"
    # The killed job was acknowledged on receipt: it is not run a second time.
    await asyncio.sleep(2)
    assert json.loads(http_status(f"{site.url}/api/runs/{accepted['run']}/")[1])["status"] == "failed"


async def test_redis_down_means_unavailable_not_a_hang_and_recovery_needs_no_restart(site):
    from coursesite.embedded import EmbeddedRedis

    redis_dir = site.var_dir / "redis"
    redis_port = int(site.services["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])
    async with Reader(site) as reader:
        streaming = await reader.send_run(*LONG_LOOP_RUN)
        assert streaming["type"] == "accepted"
        os.kill(int((redis_dir / "redis.pid").read_text()), signal.SIGKILL)
        await asyncio.sleep(0.5)
        asked = time.monotonic()
        refused = await reader.send_run(*SHORT_LOOP_RUN)
        assert refused["type"] == "error" and refused["code"] == "unavailable", refused
        assert time.monotonic() - asked < 5
        # The run already streaming on the web loop still finishes.
        finished = await reader.until_finished(streaming["run"], timeout=15)
        assert finished["status"] == "succeeded"
        status, page = http_status(site.url + "/concurrency-and-async/one-cook-many-dishes/")
        assert status == 200 and "One Cook" in page
        status, health = http_status(site.url + "/healthz")
        assert status == 503 and health["down"] == ["redis"] and health["database"] == "ok", health
        revived = EmbeddedRedis(redis_dir, port=redis_port)
        revived.start()  # the site's supervisor stops it with the rest (it finds it by its pid file)
        # The same socket works again once Redis is back.
        again = await reader.send_run(*SHORT_LOOP_RUN)
        assert again["type"] == "accepted", again
        assert (await reader.until_finished(again["run"], timeout=15))["status"] == "succeeded"
    await wait_until(lambda: worker_count(site) >= 1, 60, "the worker reconnecting to Redis")
    finished = await run_to_end(site, *SHORT_WORKER_RUN, timeout=40)
    assert finished["status"] == "succeeded", finished


async def test_postgres_down_means_unavailable_and_a_restart_is_survived_by_site_and_worker(site):
    from pgserver import pg_ctl

    pgdata = site.var_dir / "postgres"
    user = "pgserver" if os.geteuid() == 0 else None
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user, timeout=60)
    try:
        async with Reader(site) as reader:
            asked = time.monotonic()
            refused = await reader.send_run(*SHORT_LOOP_RUN)
            assert refused["type"] == "error" and refused["code"] == "unavailable", refused
            assert time.monotonic() - asked < 5
    finally:
        restart_postgres(site)  # started the way `make run` starts it, so it listens where the site expects
    status, page = await wait_until(
        lambda: (result := http_status(site.url + "/concurrency-and-async/the-event-loop/")) and result[0] == 200 and result,
        20, "the lesson page after the restart",
    )
    assert "Event Loop" in page
    assert (await run_to_end(site, *SHORT_LOOP_RUN))["status"] == "succeeded"
    assert (await run_to_end(site, *SHORT_WORKER_RUN, timeout=40))["status"] == "succeeded"


async def test_worker_demos_say_unavailable_at_once_while_loop_demos_still_run(site):
    worker_pid = site.pids["celery worker"]
    os.killpg(worker_pid, signal.SIGSTOP)  # a worker that answers nothing
    try:
        await asyncio.sleep(6)  # outlast the site's 5 s memory of a live worker
        async with Reader(site) as reader:
            asked = time.monotonic()
            refused = await reader.send_run(*SHORT_WORKER_RUN)
            assert refused["type"] == "error" and refused["code"] == "unavailable", refused
            assert time.monotonic() - asked < 3
        assert (await run_to_end(site, *SHORT_LOOP_RUN))["status"] == "succeeded"
    finally:
        os.killpg(worker_pid, signal.SIGCONT)


async def test_daphne_sigterm_records_in_flight_runs_as_cancelled(site):
    async with Reader(site) as reader:
        accepted = await reader.send_run(*LONG_LOOP_RUN)
        assert accepted["type"] == "accepted"
        await reader.next(10)
        os.kill(site.pids["daphne"], signal.SIGTERM)
        with pytest.raises((websockets.ConnectionClosed, asyncio.TimeoutError)):
            while True:
                await reader.next(10)
    # The supervisor restarts Daphne; the run was recorded as cancelled, not left running.
    record = await wait_until(
        lambda: json.loads(http_status(f"{site.url}/api/runs/{accepted['run']}/")[1]), 30, "Daphne to come back"
    )
    assert record["status"] == "cancelled", record
    assert "shut down" in record["summary"]["text"] or "left" in record["summary"]["text"]
