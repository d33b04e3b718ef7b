"""One run lifecycle: loop and worker runs end with the same statuses and the same summary fields."""
from __future__ import annotations

import asyncio

import pytest

from demos.models import Run
from tests.demos.helpers import demo_socket, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

LONG_LOOP = ("one-cook", {"requests": 5, "wait_ms": 2000, "jitter_ms": 0, "mode": "sequential"})
LONG_WORKER = ("test-long-worker", {"seconds": 20})


async def _finish(demo: str, params: dict, *, cancel_after_s: float | None = None, timeout: float = 30) -> dict:
    async with demo_socket() as socket:
        accepted = await start_run(socket, demo, params)
        if cancel_after_s is not None:
            await asyncio.sleep(cancel_after_s)
            await socket.send_json_to({"type": "cancel", "run": accepted["run"]})
        _, finished = await receive_until_finished(socket, accepted["run"], timeout=timeout)
    record = await Run.objects.aget(id=accepted["run"])
    assert record.status == finished["status"]
    return finished


@pytest.mark.parametrize("demo, params", [LONG_LOOP, LONG_WORKER], ids=["loop", "worker"])
async def test_a_run_stopped_by_its_reader_says_so_with_its_elapsed_time(demo, params, celery_worker_thread, reset_worker_cache):
    finished = await _finish(demo, params, cancel_after_s=0.5)
    assert finished["status"] == "cancelled"
    assert set(finished["summary"]) == {"text", "elapsed_ms"}
    assert finished["summary"]["text"].startswith("Stopped by the reader")
    assert finished["summary"]["elapsed_ms"] >= 400


@pytest.mark.parametrize("demo", ["test-failing", "test-failing-worker"], ids=["loop", "worker"])
async def test_a_run_past_its_time_limit_is_timed_out_with_the_same_fields(demo, celery_worker_thread, reset_worker_cache):
    finished = await _finish(demo, {"how": "hang"})
    assert finished["status"] == "timed_out"
    assert set(finished["summary"]) == {"text", "elapsed_ms"}
    assert "time limit" in finished["summary"]["text"]


@pytest.mark.parametrize("demo", ["test-failing", "test-failing-worker"], ids=["loop", "worker"])
async def test_a_run_that_raises_fails_with_the_error_class_and_no_traceback(demo, celery_worker_thread, reset_worker_cache):
    finished = await _finish(demo, {"how": "raise"})
    assert finished["status"] == "failed"
    assert set(finished["summary"]) == {"text", "error", "elapsed_ms"}
    assert finished["summary"]["error"] == "ValueError"
    assert "Traceback" not in finished["summary"]["text"]


async def test_a_stop_raised_inside_a_demos_own_task_group_ends_the_run_as_cancelled(celery_worker_thread, reset_worker_cache):
    finished = await _finish("test-failing-worker", {"how": "group"}, cancel_after_s=0.5)
    assert finished["status"] == "cancelled"
    assert set(finished["summary"]) == {"text", "elapsed_ms"}
