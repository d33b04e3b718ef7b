"""One cook, many orders: overlapping waits on one event loop.

N simulated requests each await an I/O wait (an `asyncio.sleep` standing in
for a database or network call). In `sequential` mode the loop awaits them one
after another; in `concurrent` mode all are in flight at once on the same
single thread. A reader should see the sequential total come out near the sum
of the waits and the concurrent total near the longest single wait.
"""
import asyncio
import random
import time

from demos.params import ChoiceParam, IntParam
from demos.stats import ratio_text

slug = "one-cook"
title = "One cook, many orders"
concept = "Overlapping waits on one thread: concurrent I/O takes about as long as the longest wait, not the sum."
placement = "loop"  # only awaits, bounded work: safe on the web loop
time_limit_s = 60.0
lanes = "request"
lane_states = frozenset({"waiting", "done"})
headline = ("total_ms", "longest_wait_ms", "sum_of_waits_ms")
summary_fields = {
    "total_ms": ("Time for every request", "ms"), "sum_of_waits_ms": ("Sum of the waits", "ms"),
    "longest_wait_ms": ("Longest single wait", "ms"), "requests": ("Requests", ""),
}
params = (
    ChoiceParam("mode", "concurrent", ("sequential", "concurrent"), label="Mode",
                help="sequential awaits each request before starting the next; concurrent starts them all."),
    IntParam("requests", 10, 1, 10_000, label="Requests", help="How many requests the one thread serves."),
    IntParam("wait_ms", 300, 0, 2_000, label="I/O wait (ms)", help="How long each request waits on its pretend database."),
    IntParam("jitter_ms", 50, 0, 1_000, label="Jitter (ms)", help="Each wait varies by up to this much either way."),
)
# Small enough for the test suite's run over every demo.
smoke_params = {"requests": 5, "wait_ms": 20}


def check_params(values):
    from demos.params import ParamError

    if values["mode"] == "sequential" and values["requests"] * (values["wait_ms"] + values["jitter_ms"]) > 45_000:
        raise ParamError("sequential mode with these values would outlast the 60 s limit; use fewer requests or shorter waits")


async def run(params, emit):
    rng = random.Random()
    count, wait_ms, jitter_ms = params["requests"], params["wait_ms"], params["jitter_ms"]
    planned_waits = [max(0.0, wait_ms + rng.uniform(-jitter_ms, jitter_ms)) / 1000 for _ in range(count)]
    measured_waits = [0.0] * count
    finished = 0
    progress_step = max(1, count // 100)
    emit("lanes", count=count)

    async def handle_request(index: int) -> None:
        nonlocal finished
        emit("state", lane=index, state="waiting")
        started = time.perf_counter()
        await asyncio.sleep(planned_waits[index])  # the I/O wait: the loop serves others meanwhile
        measured_waits[index] = time.perf_counter() - started
        emit("state", lane=index, state="done")
        finished += 1
        if finished % progress_step == 0 or finished == count:
            emit("progress", done=finished, total=count)

    started = time.perf_counter()
    if params["mode"] == "sequential":
        for index in range(count):
            await handle_request(index)
    else:
        async with asyncio.TaskGroup() as group:
            for index in range(count):
                group.create_task(handle_request(index))
                if index % 200 == 199:
                    # Starting thousands of tasks in one go would itself stall the
                    # site's loop; yield between batches.
                    await asyncio.sleep(0)
    total_ms = (time.perf_counter() - started) * 1000

    sum_of_waits_ms = sum(measured_waits) * 1000
    longest_wait_ms = max(measured_waits) * 1000
    if count == 1 or longest_wait_ms < 1:
        # A ratio to one wait, or to waits of 0 ms, says nothing: state what was measured.
        served = "One request" if count == 1 else f"{count} requests"
        text = (f"{served} ({params['mode']}) took {total_ms:.1f} ms in all, "
                f"{sum_of_waits_ms:.1f} ms of it waiting; with "
                + ("one request there is nothing to overlap." if count == 1 else
                   "waits this short the time is the loop's own overhead, not waiting."))
    elif params["mode"] == "sequential":
        text = (f"Served one after another, {count} requests took {total_ms:.0f} ms: "
                f"{ratio_text(total_ms, sum_of_waits_ms, 'the sum of their waits')}.")
    else:
        text = (f"With all {count} waits overlapping on one thread, the run took {total_ms:.0f} ms: "
                f"{ratio_text(total_ms, longest_wait_ms, 'the longest single wait')}, "
                f"against {sum_of_waits_ms:.0f} ms of waiting in total.")
    return {
        "text": text,
        "total_ms": round(total_ms, 1),
        "sum_of_waits_ms": round(sum_of_waits_ms, 1),
        "longest_wait_ms": round(longest_wait_ms, 1),
        "requests": count,
    }
