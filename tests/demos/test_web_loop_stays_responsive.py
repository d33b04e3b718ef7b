"""The site's own event loop never stalls for a demo, even one that blocks its own loop."""
import asyncio
import gc

import pytest

from demos.models import Run
from tests.demos.helpers import LoopLagMeter, in_process_socket, receive_runs, start_run

pytestmark = pytest.mark.django_db(transaction=True)

# How much later than an idle loop on the same machine the web loop may wake while the demos run. A demo that
# blocked the loop would stall it for 400 ms (the blocking demo's step); creating the crowd's 3,000 tasks in
# one go, without yielding, stalled it for 51 ms on an idle machine (idle baseline 1 ms): just caught.
STALL_BUDGET_MS = 50
# How long the idle loop is watched first: on a loaded machine (CI14: load 10 on 2 cores) the kernel alone wakes
# a loop tens of milliseconds late, and that lateness is the machine's, not a demo's.
IDLE_WINDOW_S = 2.0


async def test_web_loop_lag_stays_within_50ms_of_an_idle_loop_while_demos_run(celery_worker_process, reset_worker_cache):
    # This process stands in for Daphne, which freezes its start-up heap
    # (coursesite/asgi.py); freeze the suite's own objects the same way, or a
    # full collection over everything earlier tests left behind is what stalls.
    gc.collect()
    gc.freeze()
    try:
        await _measure_lag_while_demos_run()
    finally:
        gc.unfreeze()


async def _measure_lag_while_demos_run():
    # In process on purpose: the meter measures the loop the consumer runs on, which must be this one.
    async with in_process_socket() as socket:
        async with LoopLagMeter() as idle:
            await asyncio.sleep(IDLE_WINDOW_S)  # the baseline: this loop with a socket open and no demo running
        async with LoopLagMeter() as meter:
            blocking = await start_run(socket, "test-blocking-worker", {"block_ms": 400, "steps": 4}, ref="block")
            crowd = await start_run(socket, "one-cook", {"requests": 3000, "wait_ms": 300, "mode": "concurrent"}, ref="crowd")
            results = await receive_runs(socket, [blocking["run"], crowd["run"]], timeout=30)
    batches, finished = results[blocking["run"]]
    assert finished["status"] == "succeeded", finished
    assert [batch["seq"] for batch in batches] == list(range(len(batches)))
    assert results[crowd["run"]][1]["status"] == "succeeded"
    assert meter.max_lag_ms < STALL_BUDGET_MS + idle.max_lag_ms, (
        f"the web loop stalled for {meter.max_lag_ms:.0f} ms while the demos ran; idle, it woke at most "
        f"{idle.max_lag_ms:.0f} ms late")
    run = await Run.objects.aget(id=blocking["run"])
    assert run.placement == "worker" and run.status == "succeeded"
