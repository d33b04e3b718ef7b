"""Faults injected into a whole site started by `bench.site.start_site`, and what its readers saw.

Shared by the fault tests that break one part of a real site (kill -9 of its
embedded Redis or PostgreSQL, of a demo worker's pool process, SIGTERM to
Daphne) and then assert what each reader received. Restarts go through
`coursesite.embedded`, the way `make run` starts the servers, so they listen
where the site expects.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import urlopen

import psycopg
import websockets

from bench.site import RunningSite


def http_get(url: str, timeout: float = 5) -> tuple[int, str]:
    """Status and body of one GET; HTTP errors are answers too."""
    try:
        with urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except HTTPError as error:
        return error.code, error.read().decode()


def stored_run(site: RunningSite, run_id: str) -> dict | None:
    """The run as the replay API shows it; None while the site cannot answer."""
    try:
        status, body = http_get(f"{site.url}/api/runs/{run_id}/")
    except OSError:
        return None
    return json.loads(body) if status == 200 else None


async def eventually(check, timeout_s: float, what: str):
    """Poll a blocking check off the loop until it returns something true."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = await asyncio.to_thread(check)
        except OSError:
            result = None
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.3)


def wait_healthy(site: RunningSite, timeout_s: float = 90) -> None:
    """Block until the site is whole again: /healthz 200 with both workers, and a short worker run succeeds.

    For a site shared by several tests (conftest's `fault_site`): what one test broke and repaired
    (a killed server, a stopped Daphne, a killed worker) must be back before the next one breaks something.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            status, body = http_get(site.url + "/healthz", timeout=3)
            whole = status == 200 and json.loads(body)["celery_workers"] >= 2
        except (OSError, ValueError, KeyError):
            whole = False
        if whole:
            finished = asyncio.run(run_once(site, "thread-pool", {"requests": 2, "threads": 2, "wait_ms": 50}, timeout=20))
            if finished is not None and finished["status"] == "succeeded":
                return
        if time.monotonic() > deadline:
            raise AssertionError(f"the shared site was not whole again within {timeout_s} s")
        time.sleep(0.3)


def _is_gone(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return True
    return state in {"Z", "X"}


def kill_hard(pid: int, timeout_s: float = 10) -> None:
    """SIGKILL one process and wait until it is gone (a zombie counts)."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + timeout_s
    while not _is_gone(pid):
        if time.monotonic() > deadline:
            raise AssertionError(f"process {pid} outlived SIGKILL")
        time.sleep(0.05)


def redis_port(site: RunningSite) -> int:
    return int(site.services["REDIS_URL"].rsplit(":", 1)[1].split("/")[0])


def kill_redis(site: RunningSite) -> None:
    kill_hard(int((site.var_dir / "redis" / "redis.pid").read_text()))


def restart_redis(site: RunningSite) -> None:
    """Start the site's Redis again on its port, unless something (a supervisor) already did."""
    from coursesite.embedded import EmbeddedRedis
    from redis import Redis

    try:
        Redis(port=redis_port(site), socket_connect_timeout=0.5).ping()
        return
    except OSError:
        pass
    except Exception:  # redis-py's ConnectionError is no OSError
        pass
    EmbeddedRedis(site.var_dir / "redis", port=redis_port(site)).start()


def kill_postgres(site: RunningSite) -> None:
    kill_hard(int((site.var_dir / "postgres" / "postmaster.pid").read_text().split()[0]))


def restart_postgres(site: RunningSite) -> None:
    """Start the site's cluster again where the site expects it.

    pgserver keeps one handle per data directory for the life of the process and takes a cached one
    for a running server; a site shared by several tests sees its cluster restarted more than once, so
    the handle of the killed server is dropped first.
    """
    from pgserver.postgres_server import PostgresServer

    from coursesite.embedded import EmbeddedPostgres

    PostgresServer._instances.pop((site.var_dir / "postgres").resolve(), None)
    assert EmbeddedPostgres(site.var_dir / "postgres").start() == site.services["DATABASE_URL"]


def runs_left_running(site: RunningSite, run_ids: list[str]) -> list[str]:
    """Which of `run_ids` the runs table still has as running (asked of PostgreSQL directly)."""
    with psycopg.connect(site.services["DATABASE_URL"], connect_timeout=3) as connection:
        rows = connection.execute("SELECT id::text FROM demos_run WHERE id = ANY(%s::uuid[]) AND status = 'running'",
                                  (run_ids,)).fetchall()
    return [row[0] for row in rows]


def log_lines(site: RunningSite) -> list[str]:
    """The site's combined output so far (every process `make run` started writes there)."""
    return (site.var_dir.parent / f"{site.var_dir.name}.log").read_text(errors="replace").splitlines()


@dataclass
class Reading:
    """What one reader received for one run."""

    run_id: str
    events: list[dict] = field(default_factory=list)
    finished: dict | None = None
    finished_at: float | None = None


class Reader:
    """A reader's websocket, as the browser widget uses it, collecting what each run sends."""

    def __init__(self, site: RunningSite) -> None:
        self.url = site.url.replace("http://", "ws://") + "/ws/demos/"
        self.origin = site.url
        self.readings: dict[str, Reading] = {}
        self.closed_at: float | None = None

    async def __aenter__(self) -> Reader:
        self.socket = await websockets.connect(self.url, origin=self.origin)
        return self

    async def __aexit__(self, *exc) -> None:
        await self.socket.close()

    async def start(self, demo: str, params: dict) -> Reading:
        """Ask for a run; its Reading once accepted (AssertionError if refused)."""
        await self.socket.send(json.dumps({"type": "run", "demo": demo, "params": params, "ref": demo}))
        while True:
            message = await self._next(10)
            if message["type"] == "error":
                raise AssertionError(f"the run was refused: {message}")
            if message["type"] == "accepted":
                reading = self.readings[message["run"]] = Reading(message["run"])
                return reading

    async def _next(self, timeout: float) -> dict:
        message = json.loads(await asyncio.wait_for(self.socket.recv(), timeout=timeout))
        reading = self.readings.get(message.get("run", ""))
        if reading is not None and message["type"] == "events":
            reading.events.extend(message["events"])
        elif reading is not None and message["type"] == "finished":
            reading.finished, reading.finished_at = message, time.monotonic()
        return message

    async def first_events(self, reading: Reading, timeout: float = 20) -> None:
        """Until the run has streamed something (so it is really running)."""
        deadline = time.monotonic() + timeout
        while not reading.events:
            await self._next(max(0.1, deadline - time.monotonic()))

    async def listen(self, seconds: float) -> None:
        """Keep reading (and collecting) for `seconds`."""
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            try:
                await self._next(remaining)
            except TimeoutError:
                return

    async def until_finished(self, reading: Reading, timeout: float) -> dict:
        """The run's `finished`; TimeoutError if it does not come in time, ConnectionClosed if the socket closes."""
        deadline = time.monotonic() + timeout
        while reading.finished is None:
            try:
                await self._next(max(0.05, deadline - time.monotonic()))
            except websockets.ConnectionClosed:
                self.closed_at = time.monotonic()
                raise
        return reading.finished


async def run_once(site: RunningSite, demo: str, params: dict, timeout: float = 30) -> dict | None:
    """One whole run on a fresh socket: its `finished`, or None if it was refused or never finished."""
    try:
        async with Reader(site) as reader:
            reading = await reader.start(demo, params)
            return await reader.until_finished(reading, timeout)
    except (AssertionError, OSError, TimeoutError, websockets.WebSocketException):
        return None
