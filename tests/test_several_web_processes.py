"""`make run WEB_PROCESSES=2`: two Daphne processes on one port, and still one site.

One site, started the way `make run` starts it (bench.site's `start_site`, i.e.
`python -m coursesite.stack run`) with WEB_PROCESSES=2, serves this module and
tests/test_behind_nginx.py (conftest's `two_process_site`).
Each Daphne also answers on a private 127.0.0.1 port (written to
var/run/web_probes.json), which is how a test reaches one process on purpose;
the site's own port is shared, and the kernel hands its connections to
whichever Daphne accepts first.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import psutil
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bench.site import RunningSite
from tests.servers import TWO_PROCESS_SOCKETS_PER_ADDRESS, wait_two_processes_whole

pytestmark = [pytest.mark.slow, pytest.mark.own_site]

SOCKETS_PER_ADDRESS = TWO_PROCESS_SOCKETS_PER_ADDRESS  # 4
LOOP_RUN = ("one-cook", {"requests": 3, "wait_ms": 50})
WORKER_RUN = ("thread-pool", {"requests": 2, "threads": 2, "wait_ms": 50})
LESSON_SLUG = "the-event-loop"
LESSON_PATH = f"/concurrency-and-async/{LESSON_SLUG}/"


# Shared with tests/test_behind_nginx.py and tests/test_external_servers.py.
async def stream_run(base_url: str, demo: str, params: dict, *, local_addr: tuple[str, int] | None = None,
                     timeout_s: float = 40) -> tuple[int, dict]:
    """One whole run over a fresh demo socket at `base_url`: how many events it streamed, and its `finished`."""
    ws_url = base_url.replace("http://", "ws://") + "/ws/demos/"
    async with connect(ws_url, origin=base_url, local_addr=local_addr, open_timeout=15) as socket_:
        await socket_.send(json.dumps({"type": "run", "demo": demo, "params": params, "ref": "scale"}))
        events, run_id = 0, None
        deadline = time.monotonic() + timeout_s
        while True:
            message = json.loads(await asyncio.wait_for(socket_.recv(), max(0.1, deadline - time.monotonic())))
            if message["type"] == "error":
                raise AssertionError(f"the run was refused: {message}")
            if message["type"] == "accepted":
                run_id = message["run"]
            elif message["type"] == "events" and message.get("run") == run_id:
                events += len(message["events"])
            elif message["type"] == "finished" and message.get("run") == run_id:
                return events, message


def get(url: str, timeout: float = 10) -> str:
    with urlopen(url, timeout=timeout) as response:
        return response.read().decode()


def web_probes(site: RunningSite) -> dict[str, str]:
    """Each Daphne's private address, by process name."""
    return json.loads((site.var_dir / "run" / "web_probes.json").read_text())


def served_by(pid: int, port: int) -> int:
    """How many established connections to `port` this process holds."""
    return sum(1 for connection in psutil.Process(pid).net_connections("tcp")
               if connection.laddr.port == port and connection.status == psutil.CONN_ESTABLISHED)


@pytest.fixture(autouse=True)
def site(two_process_site):
    """The two-Daphne site this module shares with tests/test_behind_nginx.py (conftest's `two_process_site`:
    WEB_PROCESSES=2, probed every second so the wedge test waits less), whole again before each test."""
    wait_two_processes_whole(two_process_site)
    return two_process_site


def test_two_daphne_processes_each_take_connections_on_the_one_port(site):
    pids = site.pids
    daphnes = [pids["daphne"], pids["daphne 2"]]
    assert len(set(daphnes)) == 2 and set(web_probes(site)) == {"daphne", "daphne 2"}
    port = int(site.url.rsplit(":", 1)[1])
    # While one Daphne is stopped, the other alone accepts from the shared socket; then the other way round.
    for stopped, serving in (daphnes, reversed(daphnes)):
        os.kill(stopped, signal.SIGSTOP)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as held:
                held.sendall(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                assert held.recv(64).startswith(b"HTTP/1.1 200")
                assert served_by(serving, port) >= 1
                assert served_by(stopped, port) == 0
        finally:
            os.kill(stopped, signal.SIGCONT)
    assert "Concurrency" in get(site.url + "/")


async def test_the_per_address_socket_cap_counts_both_processes_together(site):
    """Four places for 127.0.0.1 on the whole site: eight sockets, four on each Daphne, and four are refused."""
    urls = list(web_probes(site).values())
    opened, refused = [], 0
    try:
        for attempt in range(2 * SOCKETS_PER_ADDRESS):
            base = urls[attempt % 2]
            try:
                opened.append(await connect(base.replace("http://", "ws://") + "/ws/demos/", origin=base, open_timeout=15))
            except InvalidStatus as refusal:
                assert refusal.response.status_code == 403
                refused += 1
        # The site's own port gives no extra place either.
        with pytest.raises(InvalidStatus):
            await connect(site.url.replace("http://", "ws://") + "/ws/demos/", origin=site.url, open_timeout=15)
    finally:
        for opened_socket in opened:
            await opened_socket.close()
    assert (len(opened), refused) == (SOCKETS_PER_ADDRESS, SOCKETS_PER_ADDRESS)


async def test_a_reader_on_either_process_gets_worker_and_loop_runs_streamed(site):
    for name, base in web_probes(site).items():
        for demo, params in (WORKER_RUN, LOOP_RUN):
            events, finished = await stream_run(base, demo, params)
            assert finished["status"] == "succeeded" and events > 0, (name, demo, finished)


def edit_lesson_title(site: RunningSite, title: str) -> None:
    """Save a lesson as an editor would (the model's save bumps the content version), in a process of its own."""
    env = {**os.environ, **site.services, "DJANGO_SETTINGS_MODULE": "coursesite.settings.dev"}
    code = (f"from lessons.models import Lesson; lesson = Lesson.objects.get(slug={LESSON_SLUG!r}); "
            f"lesson.title = {title!r}; lesson.save()")
    subprocess.run([sys.executable, "manage.py", "shell", "-c", code], cwd=Path(__file__).resolve().parent.parent,
                   env=env, check=True, capture_output=True, timeout=120)


def test_a_lesson_edit_reaches_the_cached_page_on_both_processes(site):
    urls = list(web_probes(site).values())
    for base in urls:  # cached by each process for anonymous readers
        assert "Retitled by an editor" not in get(base + LESSON_PATH)
        get(base + LESSON_PATH)
    edit_lesson_title(site, "Retitled by an editor")
    # Each process asks Redis for the content version at most once a second.
    deadline = time.monotonic() + 15
    while not all("Retitled by an editor" in get(base + LESSON_PATH) for base in urls):
        assert time.monotonic() < deadline, "a process kept serving its stale cached page"
        time.sleep(0.3)


def test_a_wedged_daphne_is_found_by_its_own_probe_and_replaced_alone(site):
    first, wedged = site.pids["daphne"], site.pids["daphne 2"]
    probes = web_probes(site)
    os.kill(wedged, signal.SIGSTOP)  # alive, holding the shared socket, answering nothing
    try:
        deadline = time.monotonic() + 30
        while site.pids["daphne 2"] == wedged:
            assert time.monotonic() < deadline, "the supervisor never replaced the wedged Daphne"
            assert "hello" in get(probes["daphne"] + "/hello")  # the other one serves throughout
            time.sleep(0.5)
    finally:
        if psutil.pid_exists(wedged):
            os.kill(wedged, signal.SIGCONT)
    assert site.pids["daphne"] == first
    assert not psutil.pid_exists(wedged) or psutil.Process(wedged).status() == psutil.STATUS_ZOMBIE
    assert site.log_path is not None
    assert f"daphne 2 (pid {wedged}) has not answered {probes['daphne 2']}/hello" in site.log_path.read_text()
    deadline = time.monotonic() + 60
    while True:  # the replacement takes the same private port
        try:
            assert "hello" in get(probes["daphne 2"] + "/hello", timeout=2)
            break
        except OSError:
            assert time.monotonic() < deadline, "the new Daphne never answered on its probe port"
            time.sleep(0.5)


def test_the_bench_measures_every_web_process_of_a_site(site):
    """`make bench`'s one-against-two section, at a tiny size, on this two-process site."""
    from bench import processes

    two = processes.measure_site(site, connections=4, seconds=1, viewer_count=SOCKETS_PER_ADDRESS,
                                 params={"requests": 2, "wait_ms": 50, "jitter_ms": 10, "mode": "concurrent"})
    assert two["web_processes"] == 2 and set(two["viewer_cpu_s"]) == {"daphne", "daphne 2"}
    assert two["viewers"]["finished"] == SOCKETS_PER_ADDRESS and two["lesson"]["non_2xx"] == 0
    section = "\n".join(processes.render({**two, "web_processes": 1}, two, usable_cores=2))
    assert "| 2 | " in section and "two processes ÷ one: **1.00**" in section


@pytest.mark.stops_shared_site
def test_sigterm_stops_every_process_and_frees_the_port(site):
    pids = list(site.pids.values())
    port = int(site.url.rsplit(":", 1)[1])
    site.stop()
    assert site.process.returncode == 0
    deadline = time.monotonic() + 10
    while any(psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE for pid in pids):
        assert time.monotonic() < deadline, "a process outlived the stack"
        time.sleep(0.2)
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0
