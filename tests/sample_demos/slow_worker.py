"""Test demo: a worker run that goes on until cancelled or out of time."""
import time

from demos.params import IntParam

slug = "test-slow-worker"
title = "Slow worker (test)"
concept = "A long worker run, for cancel and time-limit tests."
placement = "worker"
time_limit_s = 3.0
lanes = "tick"
params = (IntParam("seconds", 30, 1, 60),)


def run(params, emit):
    deadline = time.monotonic() + params["seconds"]
    tick = 0
    while time.monotonic() < deadline:
        emit("metric", name="tick", value=tick)
        tick += 1
        time.sleep(0.05)
    return {"text": "Ran to the end.", "ticks": tick}
