"""c10k: one event-loop thread holds 10,000 connections for a few KiB each; a thread per connection costs far more."""
import asyncio
import os
import time

import pytest

from demos.library import c10k
from lessons.rendering import render_lesson_markdown
from lessons.services import shipped_courses
from tests.demos.helpers import demo_socket, receive_runs, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("celery_worker_thread", "reset_worker_cache")]

LESSON = "05-ten-thousand-connections.md"
KIB = 1024


def _events(batches: list[dict]) -> list[dict]:
    return [event for batch in batches for event in batch["events"]]


def _metric(events: list[dict], name: str) -> list[float]:
    return [event["value"] for event in events if event["kind"] == "metric" and event["name"] == name]


def _sandbox_processes() -> list[int]:
    """Pids of c10k sandbox processes started from this checkout."""
    script = str(c10k.SCRIPT).encode()
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                    if script in cmdline.read():
                        pids.append(int(entry))
            except OSError:
                continue  # it exited while we looked
    return pids


async def test_one_thread_holds_ten_thousand_connections_for_a_few_kib_each():
    async with demo_socket() as socket:
        accepted = await start_run(socket, "c10k", {})
        batches, finished = await receive_until_finished(socket, accepted["run"], timeout=60)
    assert accepted["params"]["mode"] == "event-loop" and accepted["params"]["connections"] == 10_000
    assert finished["status"] == "succeeded", finished
    summary = finished["summary"]
    assert summary["connections_held"] == 10_000
    assert summary["requests_answered"] == 10_000
    assert summary["threads_used"] == 1
    assert 0 < summary["rss_bytes_per_connection"] < 16 * KIB  # about 5.5 KiB measured on CPython 3.11
    assert summary["elapsed_ms"] < 30_000  # about 3 s on an idle 2-core machine
    assert "10,000" in summary["text"] and "KiB per connection" in summary["text"]
    events = _events(batches)
    assert max(_metric(events, "open_connections")) == 10_000
    assert set(_metric(events, "server_threads")) == {1}
    rss = _metric(events, "server_rss_mib")
    assert rss[-1] > rss[0]


async def test_a_thread_per_connection_costs_a_thread_and_several_times_the_memory():
    async with demo_socket() as socket:
        threads = await start_run(socket, "c10k", {"mode": "threads", "connections": 10_000, "thread_cap": 500}, ref="threads")
        loop = await start_run(socket, "c10k", {"mode": "event-loop", "connections": 3_000}, ref="loop")
        results = await receive_runs(socket, [threads["run"], loop["run"]], timeout=60)
    (thread_batches, thread_finished), (_, loop_finished) = results[threads["run"]], results[loop["run"]]
    assert thread_finished["status"] == loop_finished["status"] == "succeeded", (thread_finished, loop_finished)
    per_thread, per_loop = thread_finished["summary"], loop_finished["summary"]
    # The cap holds: 500 connections, each with its own thread (plus the accepting one).
    assert per_thread["connections_held"] == per_thread["requests_answered"] == 500
    assert per_thread["threads_used"] >= 500
    assert max(_metric(_events(thread_batches), "server_threads")) >= 500
    assert per_loop["connections_held"] == 3_000 and per_loop["threads_used"] == 1
    # About 26 KiB against 5.5 KiB measured; the claim needs at least 3x.
    assert per_thread["rss_bytes_per_connection"] >= 3 * per_loop["rss_bytes_per_connection"]
    assert "10,000 connections would take about 10,000 threads" in per_thread["text"]
    assert per_thread["projected_mib_at_10000"] > 3 * per_loop["projected_mib_at_10000"]


async def test_cancelling_a_run_kills_its_sandbox_processes():
    async with demo_socket() as socket:
        accepted = await start_run(socket, "c10k", {"connections": 2_000, "hold_ms": 5_000})
        deadline = time.monotonic() + 20
        while not any(event["kind"] == "metric" for event in (await socket.receive_json_from(timeout=10))["events"]):
            assert time.monotonic() < deadline
        assert _sandbox_processes(), "the run should have started its server and client"
        await socket.send_json_to({"type": "cancel", "run": accepted["run"]})
        _, finished = await receive_until_finished(socket, accepted["run"], timeout=10)
    assert finished["status"] == "cancelled"
    deadline = time.monotonic() + 5
    while _sandbox_processes() and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert _sandbox_processes() == []


def test_the_lesson_compares_the_servers_and_shows_ten_thousand():
    rendered = render_lesson_markdown((shipped_courses()[0] / LESSON).read_text())
    assert rendered.demo_slugs.count("c10k") == 2
    assert 'data-demo="c10k"' in rendered.html
