"""One cook, many orders: overlapping waits on one event loop.

N requests each wait on I/O. In the default `network` mode every wait is a
real round trip over TCP to the upstream process (demos/upstream.py), which
answers after the requested delay, so Daphne's loop waits in its selector for
the answer's bytes; in `timer` mode an `asyncio.sleep` stands in for the wait.
In `sequential` mode the loop awaits the requests one after another; in
`concurrent` mode all are in flight at once on the same single thread. A
reader should see the sequential total come out near the sum of the waits and
the concurrent total near the longest single wait.

In concurrent network mode every request is written before the tasks that
await the answers are made, so making 10,000 tasks overlaps the waits rather
than delaying the last request; the summary says when the last request began
waiting (`launch_ms`). Timer mode keeps a task per request that makes its own
timer, as the lesson's script does (docs/adr/0024-one-cook-writes-every-request-first.md).
"""
import asyncio
import os
import random
import time
from collections.abc import Awaitable

from demos.params import ChoiceParam, IntParam
from demos.stats import ratio_text
from demos.upstream import UpstreamSession, UpstreamUnavailable

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
    "launch_ms": ("Last request began waiting at", "ms"),
}
waits = "real socket round trips to an upstream process (timer mode: asyncio.sleep standing in)"
params = (
    ChoiceParam("mode", "concurrent", ("sequential", "concurrent"), label="Mode",
                help="sequential awaits each request before starting the next; concurrent starts them all."),
    ChoiceParam("io", "network", ("network", "timer"), label="Waits on",
                help="network: each wait is a round trip over TCP to a server in another process, answered after "
                     "the wait; timer: an asyncio.sleep stands in for it."),
    IntParam("requests", 10, 1, 10_000, label="Requests", help="How many requests the one thread serves."),
    IntParam("wait_ms", 300, 0, 2_000, label="I/O wait (ms)", help="How long the upstream takes to answer each request."),
    IntParam("jitter_ms", 50, 0, 1_000, label="Jitter (ms)", help="Each wait varies by up to this much either way."),
)
# Small enough for the test suite's run over every demo.
smoke_params = {"requests": 5, "wait_ms": 20}


def check_params(values):
    from demos.params import ParamError

    if values["mode"] == "sequential" and values["requests"] * (values["wait_ms"] + values["jitter_ms"]) > 45_000:
        raise ParamError("sequential mode with these values would outlast the 60 s limit; use fewer requests or shorter waits")


async def run(params, emit):
    """Serve the requests in the chosen mode; return the measured total against the sum and the longest wait."""
    if params["io"] == "network":
        opening = time.perf_counter()
        async with UpstreamSession(connections=params["requests"]) as upstream:
            connect_ms = (time.perf_counter() - opening) * 1000  # before the clock of the run starts
            summary = await serve_requests(params, emit, upstream)
        tally = upstream.tally
        summary.update(tally.describe(), connect_ms=round(connect_ms, 1))
        summary["text"] += (f" Every wait was a round trip over TCP: {tally.requests_sent} requests on "
                            f"{tally.connections_made} connections (opened in {connect_ms:.0f} ms beforehand), "
                            f"answered by the upstream process (pid {', '.join(map(str, sorted(tally.answered_by)))}; "
                            f"this web process is pid {os.getpid()}).")
        return summary
    return await serve_requests(params, emit, None)


async def serve_requests(params, emit, upstream: UpstreamSession | None) -> dict:
    """Make every request wait (on the upstream, or on a timer when `upstream` is None) and time the whole."""
    rng = random.Random()
    count, wait_ms, jitter_ms = params["requests"], params["wait_ms"], params["jitter_ms"]
    planned_waits = [max(0.0, wait_ms + rng.uniform(-jitter_ms, jitter_ms)) / 1000 for _ in range(count)]
    measured_waits = [0.0] * count
    finished = 0
    progress_step = max(1, count // 100)
    failures: list[UpstreamUnavailable] = []
    emit("lanes", count=count)
    # When each request began waiting (run time, ms, and perf_counter), and whether its lane has been told so.
    # In concurrent mode the lanes hear it once every request is on its way, with the time it really began:
    # each microsecond of work before the last request is sent adds to the total, and the bookkeeping can
    # wait for the waiting.
    began_ms = [0.0] * count
    began_at = [0.0] * count
    announced = [False] * count
    announce_later = params["mode"] == "concurrent"

    def announce(index: int) -> None:
        if not announced[index]:
            announced[index] = True
            emit("state", lane=index, state="waiting", t=began_ms[index])

    def begin(index: int) -> Awaitable:
        """Start request `index`'s wait: write its request to the upstream, or make its timer."""
        began_ms[index] = emit.elapsed_ms()
        began_at[index] = time.perf_counter()
        if upstream is None:
            return asyncio.sleep(planned_waits[index])
        return upstream.wait(planned_waits[index] * 1000)

    async def finish(index: int, waiting: Awaitable) -> None:
        """Await request `index`'s wait (the loop serves others meanwhile), then mark its lane done."""
        nonlocal finished
        if not announce_later:
            announce(index)
        try:
            await waiting
        except UpstreamUnavailable as error:
            failures.append(error)
            announce(index)
            emit("state", lane=index, state="failed", label="no answer from the upstream")
            return
        measured_waits[index] = time.perf_counter() - began_at[index]
        announce(index)  # already done, unless its answer came before the launch was over
        emit("state", lane=index, state="done")
        finished += 1
        if finished % progress_step == 0 or finished == count:
            emit("progress", done=finished, total=count)

    # Requests written to the upstream whose answers no task awaits yet (network mode, concurrent).
    in_flight: list[Awaitable] = []
    launch_ms = None  # concurrent mode: when the last request had begun its wait, run time
    started = time.perf_counter()
    try:
        if params["mode"] == "sequential":
            for index in range(count):
                await finish(index, begin(index))
        elif upstream is None:
            # A timer starts only when its task first runs: a task per request makes and awaits it.
            async with asyncio.TaskGroup() as group:
                for index in range(count):
                    group.create_task(finish(index, begin(index)))
                    if index % 200 == 199:
                        # Starting thousands of tasks in one go would itself stall the site's loop; yield between batches.
                        await asyncio.sleep(0)
                await asyncio.sleep(0)  # the last batch makes its timers
                launch_ms = emit.elapsed_ms()
                await _announce_every_lane(count, announce)
        else:
            # Every request is written first, then a task per request awaits its answer: making 10,000 tasks
            # is the bulk of the launch, and it then overlaps the waits instead of delaying the last request,
            # as a pipelining client (HTTP/2, a database driver's pipeline) lets any program do.
            for index in range(count):
                in_flight.append(begin(index))
                if index % 500 == 499:
                    await asyncio.sleep(0)  # the lines so far go out, and the site's loop keeps turning
            await asyncio.sleep(0)  # the last lines go out
            launch_ms = emit.elapsed_ms()
            async with asyncio.TaskGroup() as group:
                for index in range(count):
                    group.create_task(finish(index, in_flight[index]))
                    if index % 200 == 199:
                        await asyncio.sleep(0)
                await _announce_every_lane(count, announce)
    finally:
        for answer in in_flight:
            # A run cut short leaves answers nobody awaited: no warning for each one.
            if not isinstance(answer, asyncio.Future):
                continue
            if not answer.done():
                answer.cancel()
            elif not answer.cancelled():
                answer.exception()
    total_ms = (time.perf_counter() - started) * 1000
    if failures:
        raise UpstreamUnavailable(f"{len(failures)} of {count} requests got no answer: {failures[0]}")

    sum_of_waits_ms = sum(measured_waits) * 1000
    longest_wait_ms = max(measured_waits) * 1000
    if count == 1 or max(planned_waits) * 1000 < 1:
        # A ratio to one wait, or to waits of 0 ms (which a real round trip still makes a millisecond or so
        # long), says nothing: state what was measured.
        served = "One request" if count == 1 else f"{count} requests"
        # Waits of 0 ms come from asking for none, or from a jitter as large as the wait (every draw below 0 ms).
        no_wait = ("no wait asked for" if wait_ms == 0 else
                   f"the jitter of up to {jitter_ms} ms either way taking every {wait_ms} ms wait down to 0 ms")
        text = (f"{served} ({params['mode']}) took {total_ms:.1f} ms in all, "
                f"{sum_of_waits_ms:.1f} ms of it waiting; with "
                + ("one request there is nothing to overlap." if count == 1 else
                   f"{no_wait}, the time is the round trips' and the loop's own overhead, not waiting."))
    elif params["mode"] == "sequential":
        text = (f"Served one after another, {count} requests took {total_ms:.0f} ms: "
                f"{ratio_text(total_ms, sum_of_waits_ms, 'the sum of their waits')}.")
    else:
        text = (f"With all {count} waits overlapping on one thread, the run took {total_ms:.0f} ms: "
                f"{ratio_text(total_ms, longest_wait_ms, 'the longest single wait')}, "
                f"against {sum_of_waits_ms:.0f} ms of waiting in total. The last request began its wait "
                f"{launch_ms:.0f} ms into the run.")
    summary = {
        "text": text,
        "total_ms": round(total_ms, 1),
        "sum_of_waits_ms": round(sum_of_waits_ms, 1),
        "longest_wait_ms": round(longest_wait_ms, 1),
        "requests": count,
    }
    if launch_ms is not None:
        summary["launch_ms"] = round(launch_ms, 1)
    return summary


async def _announce_every_lane(count: int, announce) -> None:
    """Tell every lane it is waiting (those not told yet), yielding now and then so the loop keeps turning."""
    for index in range(count):
        announce(index)
        if index % 1_000 == 999:
            await asyncio.sleep(0)


# "Edit and run" opens this program: the idea above in a few lines of standard-library Python that a
# reader can change and run (the sandbox has no network and no database: timers, threads, processes).
starting_program = '''\
import asyncio
import time


async def dish(name, wait_s):
    print(f"{name}: in the oven")
    await asyncio.sleep(wait_s)  # waiting, not cooking: the one cook is free meanwhile
    print(f"{name}: ready")


async def main():
    started = time.perf_counter()
    await asyncio.gather(dish("bread", 0.3), dish("soup", 0.2), dish("tea", 0.1))
    print(f"three dishes in {time.perf_counter() - started:.2f} s: the longest wait, not the sum")


asyncio.run(main())
'''
