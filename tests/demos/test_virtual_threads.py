"""virtual-threads: gevent runs blocking handler code for 10,000 waiting requests on one OS thread, at a few KiB each.

The claim test calls the demo's `run` in this process, as the worker does, so
it also proves that running greenlets mode never patches (or even imports
gevent into) the process that starts the sandbox. The failure paths go
through the real site: a worker runs the demo, the test kills one of its
processes, and the reader must get a failed summary that names it.
"""
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from demos.events import EventRecorder
from demos.library import virtual_threads
from demos.params import ParamError, validate_params
from demos.supervisor import RunEmitter
from lessons.rendering import render_lesson_markdown
from lessons.services import shipped_courses
from tests.demos.helpers import demo_socket, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

LESSON = "04-thread-pools.md"
KIB = 1024
BASE_DIR = Path(__file__).resolve().parents[2]


def _run_directly(**supplied) -> tuple[dict, list[dict]]:
    params = validate_params(virtual_threads, supplied)
    recorder = EventRecorder()
    summary = virtual_threads.run(params, RunEmitter(recorder, time_limit_s=virtual_threads.time_limit_s))
    return summary, recorder.stored


def _processes_running(script: Path) -> list[int]:
    """Pids of processes started from `script` of this checkout."""
    needle = str(script).encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if needle in cmdline.read():
                        pids.append(int(entry))
            except OSError:
                continue  # it exited while we looked
    return pids


def test_greenlets_hold_ten_thousand_blocking_requests_on_one_thread_near_the_loops_memory():
    greenlets, greenlet_events = _run_directly()
    # The worker's own process stays unpatched: gevent lives in the sandbox alone.
    assert "gevent" not in sys.modules
    assert socket.socket.__module__ == "socket"
    loop, _ = _run_directly(mode="asyncio")
    threads, thread_events = _run_directly(mode="threads")

    assert greenlets["mode"] == "greenlets" and greenlets["socket_class"].startswith("gevent.")
    for summary in (greenlets, loop):
        assert summary["requests"] == summary["waiting_at_once"] == 10_000
        assert summary["os_threads"] == 1
        # Every request waited the full delay after the last one arrived; about 3.5 s on an idle machine.
        assert summary["delay_ms"] <= summary["elapsed_ms"] < 15_000
        assert summary["kernel_stack_bytes_per_request"] == 0  # no thread added, so no kernel stack
        assert "No thread was added" in summary["text"]
    # Threads mode is capped as c10k caps it, and says so.
    assert threads["requests"] == threads["waiting_at_once"] == 1_000 and threads["capped"]
    assert threads["os_threads"] > 1_000
    assert "served 1,000 of the 10,000" in threads["text"]
    # Each thread adds a kernel stack (16 KiB on x86-64), outside the process's resident set.
    assert threads["kernel_stack_bytes_per_request"] >= 8 * KIB

    # Measured on CPython 3.11: asyncio about 3.2 KiB, greenlets 8.8, threads 16 resident plus 16 in the kernel.
    per_loop, per_greenlet = loop["rss_bytes_per_request"], greenlets["rss_bytes_per_request"]
    per_thread = threads["rss_bytes_per_request"] + threads["kernel_stack_bytes_per_request"]
    assert 0 < per_loop < per_greenlet <= 16 * KIB
    assert per_greenlet - per_loop < per_thread - per_greenlet  # nearer the loop's cost than a thread's
    assert per_thread >= 2 * per_greenlet

    assert "10,000 blocking-style round trips" in greenlets["text"] and "1 OS thread" in greenlets["text"]
    waiting = [event for event in greenlet_events if event["kind"] == "state" and event["lane"] == 0]
    assert [event["state"] for event in waiting][-2:] == ["waiting", "done"]
    assert any(event["state"] == "blocked" for event in thread_events if event["kind"] == "state")
    assert max(event["value"] for event in greenlet_events if event.get("name") == "requests_waiting") == 10_000


def test_a_hard_descriptor_limit_below_the_requests_caps_the_run_and_says_so():
    # A child process whose hard limit is 1,200: it cannot be raised back, so the demo must serve fewer.
    program = (
        "import django, json, os; os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'coursesite.settings.test'); django.setup()\n"
        "from demos.events import EventRecorder; from demos.supervisor import RunEmitter\n"
        "from demos.library import virtual_threads as demo; from demos.params import validate_params\n"
        "params = validate_params(demo, {'requests': 10000, 'delay_ms': 200})\n"
        "print(json.dumps(demo.run(params, RunEmitter(EventRecorder(), time_limit_s=demo.time_limit_s))))\n"
    )

    def lower_the_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (1_200, 1_200))

    done = subprocess.run([sys.executable, "-c", program], cwd=BASE_DIR, capture_output=True, text=True, timeout=60,
                          preexec_fn=lower_the_limit)
    assert done.returncode == 0, done.stderr[-2000:]
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["capped"] and summary["requests_asked"] == 10_000
    assert summary["requests"] == summary["waiting_at_once"] == 1_200 - virtual_threads.DESCRIPTOR_HEADROOM
    assert "hard descriptor limit here is 1,200" in summary["text"]


def test_bad_parameters_are_refused():
    for bad in ({"mode": "fibers"}, {"requests": 10_001}, {"requests": 9}, {"delay_ms": 99}, {"thread_cap": 2_001}):
        with pytest.raises(ParamError):
            validate_params(virtual_threads, bad)


async def _kill_mid_run(script: Path) -> dict:
    """Start a run through the site, kill the process started from `script` once requests wait, return `finished`."""
    async with demo_socket() as socket_to_site:
        accepted = await start_run(socket_to_site, "virtual-threads", {"requests": 500, "delay_ms": 3_000})
        deadline = time.monotonic() + 20
        # The first `requests_waiting` metric comes once the sandbox has started its requests.
        while not any(event.get("name") == "requests_waiting"
                      for event in (await socket_to_site.receive_json_from(timeout=10)).get("events", [])):
            assert time.monotonic() < deadline, "the run never reached its waiting requests"
        victims = _processes_running(script)
        assert len(victims) == 1
        os.kill(victims[0], signal.SIGKILL)
        _, finished = await receive_until_finished(socket_to_site, accepted["run"], timeout=20)
    # The demo stops (and reaps) both processes before the run reports its end.
    assert _processes_running(virtual_threads.SANDBOX_SCRIPT) == _processes_running(virtual_threads.UPSTREAM_SCRIPT) == []
    return finished


@pytest.mark.usefixtures("celery_worker_thread", "reset_worker_cache")
async def test_a_sandbox_that_dies_ends_the_run_failed_saying_so():
    finished = await _kill_mid_run(virtual_threads.SANDBOX_SCRIPT)
    assert finished["status"] == "failed", finished
    assert "the handler sandbox died while the requests waited" in finished["summary"]["text"]
    assert "exit status -9" in finished["summary"]["text"]


@pytest.mark.usefixtures("celery_worker_thread", "reset_worker_cache")
async def test_an_upstream_that_dies_ends_the_run_failed_saying_so():
    finished = await _kill_mid_run(virtual_threads.UPSTREAM_SCRIPT)
    assert finished["status"] == "failed", finished
    assert "the slow upstream server died while the requests waited" in finished["summary"]["text"]


def test_the_lesson_compares_threads_with_greenlets_and_shows_ten_thousand():
    source = (shipped_courses()[0] / LESSON).read_text()
    rendered = render_lesson_markdown(source)
    assert rendered.demo_slugs.count("virtual-threads") == 2
    assert 'data-demo="virtual-threads"' in rendered.html
    assert "JEP 491" in source and "monkey" in source
