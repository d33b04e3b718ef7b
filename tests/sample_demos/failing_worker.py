"""Test demo: a worker run that raises, hangs, or stops inside a TaskGroup of its own.

The worker twin of `test-failing`: both placements must end runs with the
same statuses and the same summary fields.
"""
import asyncio
import time

from demos.params import ChoiceParam

slug = "test-failing-worker"
title = "Fails in a worker (test)"
concept = "A worker demo that raises, overstays its limit, or is stopped inside its own TaskGroup."
placement = "worker"
time_limit_s = 2.0
lanes = "step"
params = (ChoiceParam("how", "raise", ("raise", "hang", "group")),)


async def _ticking_group(emit) -> None:
    async def tick() -> None:
        while True:
            emit("metric", name="tick", value=time.monotonic())  # raises RunCancelled once the reader stops the run
            await asyncio.sleep(0.02)

    async with asyncio.TaskGroup() as group:
        group.create_task(tick())
        group.create_task(tick())


def run(params, emit):
    emit("state", lane=0, state="running")
    if params["how"] == "hang":
        while True:  # the 2 s limit must stop this
            emit.check_cancelled()
            time.sleep(0.02)
    if params["how"] == "group":
        asyncio.run(_ticking_group(emit))  # the engine, not this demo, unwraps the ExceptionGroup
    raise ValueError("the worker demo broke on purpose")
