"""Test demo: a worker run that blocks its own event loop on purpose.

It proves placement: the blocking happens in the worker's sandbox loop, and
the site's loop keeps ticking.
"""
import asyncio
import time

from demos.params import IntParam

slug = "test-blocking-worker"
title = "Blocks its own loop (test)"
concept = "A worker-placed run may block; the web loop must not notice."
placement = "worker"
time_limit_s = 20.0
lanes = "step"
params = (IntParam("block_ms", 300, 0, 5_000), IntParam("steps", 3, 1, 20))


def run(params, emit):
    async def sandbox():
        for step in range(params["steps"]):
            emit("state", lane=step, state="running")
            time.sleep(params["block_ms"] / 1000)  # noqa: ASYNC251  (blocks this sandbox loop: exactly the point)
            emit("state", lane=step, state="done")
            emit("progress", done=step + 1, total=params["steps"])

    asyncio.run(sandbox())
    return {"text": "Blocked its own loop in the worker.", "steps": params["steps"]}
