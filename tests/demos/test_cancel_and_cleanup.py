"""Cancel or disconnect stops a run within a second, records it, and leaves nothing running."""
import asyncio
import time

import pytest

from tests.demos.helpers import demo_socket, in_process_socket, receive_until_finished, start_run, wait_for_run_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

LONG = {"requests": 50, "wait_ms": 2000, "jitter_ms": 0, "mode": "concurrent"}


async def test_cancel_stops_a_loop_run_within_a_second():
    async with demo_socket() as socket:
        accepted = await start_run(socket, "one-cook", LONG)
        await asyncio.sleep(0.2)
        asked = time.monotonic()
        await socket.send_json_to({"type": "cancel", "run": accepted["run"]})
        _, finished = await receive_until_finished(socket, accepted["run"], timeout=5)
        assert time.monotonic() - asked < 1.0
        assert finished["status"] == "cancelled"
        assert "Stopped by the reader" in finished["summary"]["text"]
    assert await wait_for_run_status(accepted["run"], {"cancelled"}, timeout=1) == "cancelled"


async def test_closing_the_socket_cancels_its_runs_within_a_second():
    async with demo_socket() as socket:
        first = await start_run(socket, "one-cook", LONG, ref="a")
        second = await start_run(socket, "one-cook", LONG, ref="b")
        await asyncio.sleep(0.2)
        closed = time.monotonic()
    for accepted in (first, second):
        assert await wait_for_run_status(accepted["run"], {"cancelled"}, timeout=1) == "cancelled"
    assert time.monotonic() - closed < 1.5


def _tasks_of_this_loop() -> int:
    """Tasks on this loop, less the per-process lease keeper (it renews every socket's lease and lives on by design)."""
    return sum(1 for task in asyncio.all_tasks() if task.get_name() != "lease-keeper")


async def test_no_task_of_a_run_outlives_its_cancel_or_its_socket():
    # In process on purpose: it counts the tasks of the loop the consumer runs on.
    baseline = _tasks_of_this_loop()
    async with in_process_socket() as socket:
        cancelled = await start_run(socket, "one-cook", LONG, ref="a")
        await start_run(socket, "one-cook", LONG, ref="b")
        await asyncio.sleep(0.2)
        assert _tasks_of_this_loop() > baseline + 50  # the demos' own tasks are really running
        await socket.send_json_to({"type": "cancel", "run": cancelled["run"]})
        while (message := await socket.receive_json_from(timeout=5))["type"] != "finished":
            pass  # both runs' event batches
        assert message["run"] == cancelled["run"]
    await asyncio.sleep(0.1)
    assert _tasks_of_this_loop() <= baseline


async def test_a_cancel_arriving_as_a_run_ends_still_leaves_it_recorded_and_finished():
    """The demo raises at once and the cancel follows straight after, so it lands
    in the middle of the run's ending. The reader still gets `finished`, the record
    agrees with it, and nothing is left running."""
    for attempt in range(15):
        async with demo_socket() as socket:
            accepted = await start_run(socket, "test-failing", {"how": "raise"}, ref=f"r{attempt}")
            await socket.send_json_to({"type": "cancel", "run": accepted["run"]})
            messages = []
            while not any(message["type"] == "finished" for message in messages):
                messages.append(await socket.receive_json_from(timeout=5))
            finished = messages[-1]
            assert finished["status"] in {"failed", "cancelled"}
            # A cancel that came too late is told so; nothing else may arrive.
            assert all(m["type"] in {"events", "finished"} or m.get("code") == "unknown_run" for m in messages), messages
        recorded = await wait_for_run_status(accepted["run"], {finished["status"]}, timeout=2)
        assert recorded == finished["status"], (attempt, recorded, finished)


async def test_cancel_stops_a_worker_run_and_frees_the_worker(celery_worker_thread, reset_worker_cache):
    async with demo_socket() as socket:
        accepted = await start_run(socket, "test-slow-worker", {"seconds": 30})
        first = await socket.receive_json_from(timeout=10)
        assert first["type"] == "events" and first["seq"] == 0
        asked = time.monotonic()
        await socket.send_json_to({"type": "cancel", "run": accepted["run"]})
        _, finished = await receive_until_finished(socket, accepted["run"], timeout=5)
        assert time.monotonic() - asked < 1.0
        assert finished["status"] == "cancelled"
    # The job itself stops too: the worker has nothing active within a second or two.
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        active = await asyncio.to_thread(_active_jobs, celery_worker_thread)
        if active == 0:
            break
        await asyncio.sleep(0.2)
    assert active == 0
    assert await wait_for_run_status(accepted["run"], {"cancelled"}) == "cancelled"


def _active_jobs(worker) -> int:
    from coursesite.celery import app

    # Only this test's worker: another module's worker may still be finishing its own runs.
    replies = app.control.inspect(destination=[worker.hostname], timeout=1).active() or {}
    return sum(len(jobs) for jobs in replies.values())


async def test_worker_run_past_its_time_limit_is_timed_out(celery_worker_thread, reset_worker_cache):
    async with demo_socket() as socket:
        accepted = await start_run(socket, "test-slow-worker", {"seconds": 20})
        _, finished = await receive_until_finished(socket, accepted["run"], timeout=15)
    assert finished["status"] == "timed_out"
    assert await wait_for_run_status(accepted["run"], {"timed_out"}) == "timed_out"
