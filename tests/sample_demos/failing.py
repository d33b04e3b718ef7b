"""Test demo: a loop run that raises, to prove a failure reaches the reader."""
import asyncio

from demos.params import ChoiceParam

slug = "test-failing"
title = "Fails (test)"
concept = "A demo that raises must end as failed, with the error shown."
placement = "loop"
time_limit_s = 1.0
lanes = "step"
params = (ChoiceParam("how", "raise", ("raise", "hang")),)


async def run(params, emit):
    emit("state", lane=0, state="running")
    if params["how"] == "hang":
        await asyncio.sleep(3600)  # the 1 s time limit must stop this
    raise ValueError("the demo broke on purpose")
