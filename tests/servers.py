"""Real Daphne processes for the tests, started exactly as `make run` starts its own.

A test's websocket then meets the server's own rules (close codes, frame
limits, the handshake) rather than an in-process stand-in. Settings reach
such a process only through its environment, so a test that needs other
limits starts a server of its own with overrides (the `daphne_factory`
fixture in tests/conftest.py).
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import URLError
from urllib.request import urlopen

import psutil

from bench.site import ONE_LOCAL_CLIENT_ENV
from coursesite.embedded import free_port
from coursesite.processes import daphne_argv, upstream_argv

HOST = "127.0.0.1"
START_TIMEOUT_S = 60


@dataclass
class DaphneServer:
    """One running Daphne: where it listens and where it writes its log."""

    host: str
    port: int
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def ws_url(self, path: str) -> str:
        """The websocket address of a route on this server."""
        return f"ws://{self.host}:{self.port}{path}"

    def log_mark(self) -> int:
        """A position in the log; `log_since(mark)` reads what was written after it."""
        return self.log_path.stat().st_size

    def log_since(self, mark: int = 0) -> str:
        """What the server wrote to its log after `mark`."""
        with open(self.log_path, "rb") as log:
            log.seek(mark)
            return log.read().decode("utf-8", errors="replace")


@dataclass
class UpstreamServer:
    """The demos' upstream (demos/upstream.py), started as `make run` starts it."""

    port: int
    log_path: Path
    process: subprocess.Popen = field(repr=False)

    @property
    def address(self) -> str:
        """What a Daphne's DEMO_UPSTREAM_ADDRESS must say to reach it."""
        return f"{HOST}:{self.port}"


def start_upstream(*, base_dir: Path) -> UpstreamServer:
    """Start the upstream on a free port and wait until it accepts connections."""
    port = free_port(HOST)
    log_path = base_dir / "var" / f"upstream-test-{port}.log"
    log_path.parent.mkdir(exist_ok=True)
    with open(log_path, "wb") as log:
        process = subprocess.Popen(list(upstream_argv(port)), cwd=base_dir, stdout=log, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True)
    server = UpstreamServer(port=port, log_path=log_path, process=process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            socket.create_connection((HOST, port), timeout=1).close()
            return server
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_process(process)
                raise RuntimeError(f"the upstream did not start; see {log_path}") from None
            time.sleep(0.1)  # a sync fixture, never inside a test's event loop


def stop_process(process: subprocess.Popen) -> None:
    """SIGTERM the process's group, then SIGKILL if it hangs."""
    if process.poll() is None:
        os.killpg(process.pid, 15)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


def start_daphne(*, base_dir: Path, database_url: str, env_overrides: dict[str, str] | None = None) -> DaphneServer:
    """Start Daphne against the given database and wait until it answers /healthz."""
    port = free_port(HOST)
    # Every client of the suite is 127.0.0.1: per-address shares are lifted unless a test sets them (as the
    # fair-share tests do, through daphne_factory), or every test running three worker demos would be `busy`.
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "coursesite.settings.test",
           "PYTHONUNBUFFERED": "1", **ONE_LOCAL_CLIENT_ENV, **(env_overrides or {})}
    log_path = base_dir / "var" / f"daphne-test-{port}.log"
    log_path.parent.mkdir(exist_ok=True)
    with open(log_path, "wb") as log:  # the child keeps its own copy of the descriptor
        process = subprocess.Popen(list(daphne_argv(HOST, port)), cwd=base_dir, env=env, stdout=log,
                                   stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    server = DaphneServer(host=HOST, port=port, log_path=log_path, process=process)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            urlopen(server.url + "/healthz", timeout=2)
            return server
        except URLError as error:
            if getattr(error, "code", None):
                return server  # an HTTP error status still means it is serving
            if process.poll() is not None or time.monotonic() > deadline:
                stop_daphne(server)
                raise RuntimeError(f"daphne did not start; see {log_path}") from None
            time.sleep(0.2)  # a sync fixture, never inside a test's event loop


def stop_daphne(server: DaphneServer) -> None:
    """Stop Daphne as `make run` does (SIGTERM), then SIGKILL if it hangs."""
    stop_process(server.process)


# The two-Daphne site tests/conftest.py's `two_process_site` starts for tests/test_behind_nginx.py and
# tests/test_several_web_processes.py.
TWO_PROCESS_SOCKETS_PER_ADDRESS = 4
TWO_PROCESS_SITE_ENV = {
    "WEB_PROCESSES": "2",
    "TRUSTED_PROXIES": "127.0.0.1",
    "DEMO_SOCKETS_PER_IP": str(TWO_PROCESS_SOCKETS_PER_ADDRESS),
    "SUPERVISOR_PROBE_INTERVAL_S": "1",
}


def wait_two_processes_whole(site, timeout_s: float = 60) -> None:
    """Block until both Daphnes the pid file names are alive and answer on their own probe ports, and /healthz
    sees both workers: what a test stopped, wedged or killed has been replaced by the supervisor."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            pids = site.pids
            probes = json.loads((site.var_dir / "run" / "web_probes.json").read_text())
            alive = all(psutil.Process(pids[name]).status() not in (psutil.STATUS_ZOMBIE, psutil.STATUS_STOPPED)
                        for name in ("daphne", "daphne 2"))
            answering = all(b"hello" in urlopen(url + "/hello", timeout=2).read() for url in probes.values())
            health = json.loads(urlopen(site.url + "/healthz", timeout=3).read())
            if alive and answering and health["down"] == [] and health["celery_workers"] >= 2:
                return
        except (OSError, ValueError, KeyError, psutil.Error):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"the shared two-process site was not whole again within {timeout_s} s")
        time.sleep(0.2)  # a sync fixture's helper, never inside a test's event loop
