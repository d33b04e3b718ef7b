"""c10k: one event-loop thread holds 10,000 connections for under 4 KiB each; a thread per connection costs 5x that or more."""
import asyncio
import os
import time

import pytest

from demos.library import c10k
from lessons.rendering import render_lesson_markdown
from lessons.services import shipped_courses
from tests.demos.helpers import demo_socket, receive_runs, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server", "celery_worker_thread", "reset_worker_cache")]

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


async def test_one_thread_holds_ten_thousand_connections_at_a_fifth_of_the_memory_of_a_thread_each():
    # The bench's sizes (issue 7): the loop at its default 10,000 connections, threads at
    # 1,000; both in one test, so the ratio compares two runs made side by side.
    async with demo_socket() as socket:
        loop = await start_run(socket, "c10k", {}, ref="loop")
        threads = await start_run(socket, "c10k", {"mode": "threads", "connections": 1_000}, ref="threads")
        results = await receive_runs(socket, [loop["run"], threads["run"]], timeout=60)
    (loop_batches, loop_finished), (thread_batches, thread_finished) = results[loop["run"]], results[threads["run"]]
    assert loop["params"]["mode"] == "event-loop" and loop["params"]["connections"] == 10_000
    assert loop_finished["status"] == thread_finished["status"] == "succeeded", (loop_finished, thread_finished)
    per_loop, per_thread = loop_finished["summary"], thread_finished["summary"]

    assert per_loop["connections_held"] == per_loop["requests_answered"] == 10_000
    assert per_loop["threads_used"] == 1
    # The target is 4 KiB; about 1.8 KiB measured on CPython 3.11.
    assert 0 < per_loop["rss_bytes_per_connection"] <= 4 * KIB
    assert per_loop["elapsed_ms"] < 20_000  # about 2.5 s on an idle 2-core machine
    assert "10,000" in per_loop["text"] and "KiB per connection" in per_loop["text"]
    loop_events = _events(loop_batches)
    assert max(_metric(loop_events, "open_connections")) == 10_000
    assert set(_metric(loop_events, "server_threads")) == {1}
    rss = _metric(loop_events, "server_rss_mib")
    assert rss[-1] > rss[0]
    # Lanes are drawn as measured: every phase's label gives the share of a core its process used,
    # and the state follows it; ten thousand connections sitting idle cost the client no CPU.
    for events in (loop_events, _events(thread_batches)):
        phases = [event for event in events if event["kind"] == "state" and event["state"] != "done"]
        assert {event["lane"] for event in phases} == {0, 1}
        for event in phases:
            share = float(event["label"].rsplit("(", 1)[1].split(" of a core")[0])
            assert event["state"] == ("running" if share >= c10k.CPU_BOUND_SHARE else "blocked"), event
        idle = next(event for event in phases if event["label"].startswith("idle, every connection open"))
        assert idle["state"] == "blocked", idle
    assert 0 < per_loop["server_cpu_ms"] < per_loop["elapsed_ms"]

    # 1,000 connections, each with its own thread (plus the accepting one).
    assert per_thread["connections_held"] == per_thread["requests_answered"] == 1_000
    assert per_thread["threads_used"] >= 1_000
    assert max(_metric(_events(thread_batches), "server_threads")) >= 1_000
    assert per_thread["elapsed_ms"] < 20_000  # about 1.5 s on an idle 2-core machine
    # The target is 5x; about 26 KiB against 1.8 KiB (14x) measured.
    assert per_thread["rss_bytes_per_connection"] >= 5 * per_loop["rss_bytes_per_connection"]
    assert "10,000 connections would take about 10,000 threads" in per_thread["text"]
    assert per_thread["projected_mib_at_10000"] > 5 * per_loop["projected_mib_at_10000"]


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
