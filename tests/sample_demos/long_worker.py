"""Test demo: a long worker run (30 s limit), for killing its worker mid-run."""
import time

from demos.params import IntParam

slug = "test-long-worker"
title = "Long worker (test)"
concept = "A worker run long enough to kill its worker in the middle."
placement = "worker"
time_limit_s = 30.0
lanes = "tick"
params = (IntParam("seconds", 20, 1, 25),)


def run(params, emit):
    deadline = time.monotonic() + params["seconds"]
    tick = 0
    while time.monotonic() < deadline:
        emit("progress", done=tick, total=params["seconds"] * 10)
        tick += 1
        time.sleep(0.1)
    return {"text": "Ran to the end.", "ticks": tick}
