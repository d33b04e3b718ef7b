"""Blocking the loop: one synchronous call inside `async def` stalls every task.

A sandbox event loop (its own, made with `asyncio.run` inside the worker; the
site's loop is never touched) runs a heartbeat that wants to tick every 20 ms
and serves a stream of small requests, one every 50 ms, each awaiting 10 ms of
pretend I/O. A quarter of a second in, one slow request needs `block_ms`:

- `await`: it awaits `asyncio.sleep`, so the loop keeps serving everyone else;
- `block`: it calls `time.sleep` inline, so nothing else on the loop runs until
  it returns;
- `offload`: it hands the same `time.sleep` to `asyncio.to_thread`, so the wait
  happens in another thread while the loop carries on.

A reader should see the heartbeat-lag chart spike to about `block_ms` in
`block` mode, with the requests that arrived meanwhile queued behind it, and
stay flat in the other two modes.
"""
import asyncio
import time

from demos.params import ChoiceParam, IntParam
from demos.stats import tail

slug = "blocking-the-loop"
title = "Blocking the event loop"
concept = ("A blocking call inside async code freezes every task on the loop for as long as it blocks; "
           "awaiting or offloading it does not.")
placement = "worker"  # it blocks a loop on purpose: its own sandbox loop, in a worker
time_limit_s = 30.0
lanes = "request"
headline = ("heartbeat_max_lag_ms", "request_tail_ms", "idle_request_tail_ms")
summary_fields = {
    "heartbeat_max_lag_ms": ("Heartbeat's worst lag", "ms"), "heartbeat_p99_lag_ms": ("Heartbeat lag, 99th percentile", "ms"),
    "request_tail_ms": ("Other requests' latency (p99, or the max under 100 requests)", "ms"),
    "idle_request_tail_ms": ("The same before the slow step: the baseline", "ms"),
    "request_tail": ("Which tail the figure is", ""), "idle_request_tail": ("Which tail the baseline is", ""),
    "request_max_ms": ("Other requests' slowest latency", "ms"), "slow_request_ms": ("Slow request's step", "ms"),
    "heartbeats": ("Heartbeats timed", ""), "requests": ("Other requests served", ""),
}
lane_states = frozenset({"waiting", "blocked", "queued", "done"})
waits = "timers standing in for I/O: asyncio.sleep, or time.sleep where it blocks"
params = (
    ChoiceParam("mode", "block", ("await", "block", "offload"), label="Slow request",
                help="await: asyncio.sleep; block: time.sleep on the loop; offload: time.sleep via asyncio.to_thread."),
    IntParam("block_ms", 500, 50, 3_000, label="Slow step (ms)", help="How long the slow request's step takes."),
)
# Small enough for the test suite's run over every demo.
smoke_params = {"block_ms": 100}

HEARTBEAT_S = 0.020
REQUEST_EVERY_S = 0.050
REQUEST_WAIT_S = 0.010
SLOW_STARTS_AT_S = 0.250
TAIL_S = 0.500  # requests keep arriving this long after the slow step should have ended
LATE_MS = 2.0  # a request that starts later than this after it arrived is drawn as queued


async def _serve(mode: str, block_s: float, request_count: int, emit, run_ms) -> dict:
    """Run the heartbeat, the request stream and the slow request on this (sandbox) loop."""
    heartbeat_lags_ms: list[float] = []
    request_latencies_ms: list[float] = []
    # The same measures before the slow request starts: the idle baseline of this run.
    idle_lags_ms: list[float] = []
    idle_latencies_ms: list[float] = []
    stopping = False

    async def heartbeat() -> None:
        while not stopping:
            expected = time.perf_counter() + HEARTBEAT_S
            await asyncio.sleep(HEARTBEAT_S)
            lag_ms = max(0.0, (time.perf_counter() - expected) * 1000)
            heartbeat_lags_ms.append(lag_ms)
            if time.perf_counter() - stream_started < SLOW_STARTS_AT_S:
                idle_lags_ms.append(lag_ms)
            emit("metric", name="heartbeat_lag_ms", value=round(lag_ms, 1), unit="ms")

    async def small_request(lane: int, arrived: float) -> None:
        # `arrived` is when the client sent it; a frozen loop cannot even pick it up.
        if (time.perf_counter() - arrived) * 1000 > LATE_MS:
            emit("state", lane=lane, state="queued", t=run_ms(arrived))
        emit("state", lane=lane, state="waiting")
        await asyncio.sleep(REQUEST_WAIT_S)
        latency_ms = (time.perf_counter() - arrived) * 1000
        request_latencies_ms.append(latency_ms)
        if time.perf_counter() - stream_started < SLOW_STARTS_AT_S:
            idle_latencies_ms.append(latency_ms)
        emit("state", lane=lane, state="done")
        emit("metric", name="request_latency_ms", value=round(latency_ms, 1), unit="ms")

    async def slow_request() -> float:
        await asyncio.sleep(SLOW_STARTS_AT_S)
        started = time.perf_counter()
        if mode == "await":
            emit("state", lane=0, state="waiting", label="await asyncio.sleep(...)")
            await asyncio.sleep(block_s)
        elif mode == "block":
            emit("state", lane=0, state="blocked", label="time.sleep(...) on the loop")
            time.sleep(block_s)  # noqa: ASYNC251  (the mistake this demo exists to show, on its own sandbox loop)
        else:
            emit("state", lane=0, state="waiting", label="await asyncio.to_thread(time.sleep, ...)")
            await asyncio.to_thread(time.sleep, block_s)
        elapsed_ms = (time.perf_counter() - started) * 1000
        emit("state", lane=0, state="done")
        return elapsed_ms

    stream_started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        group.create_task(heartbeat())
        slow = group.create_task(slow_request())
        for lane in range(1, request_count + 1):
            arrives = stream_started + (lane - 1) * REQUEST_EVERY_S
            delay = arrives - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            group.create_task(small_request(lane, arrives))
        slow_request_ms = await slow
        stopping = True
    return {
        "heartbeat_lags_ms": heartbeat_lags_ms,
        "request_latencies_ms": request_latencies_ms,
        "idle_lags_ms": idle_lags_ms,
        "idle_latencies_ms": idle_latencies_ms,
        "slow_request_ms": slow_request_ms,
    }


def run(params, emit):
    """Serve the stream on a fresh sandbox loop in this worker thread; return the measured lags."""
    mode, block_s = params["mode"], params["block_ms"] / 1000
    stream_s = SLOW_STARTS_AT_S + block_s + TAIL_S
    request_count = round(stream_s / REQUEST_EVERY_S)
    clock_origin = time.perf_counter()
    origin_ms = emit("lanes", count=request_count + 1,
                     labels=["slow request"] + [f"request {number}" for number in range(1, request_count + 1)])

    def run_ms(moment: float) -> float:
        return origin_ms + (moment - clock_origin) * 1000

    measured = asyncio.run(_serve(mode, block_s, request_count, emit, run_ms))

    lags, latencies = measured["heartbeat_lags_ms"], measured["request_latencies_ms"]
    # Rounded once, so the text and the numbers agree to the millisecond.
    max_lag_ms = round(max(lags, default=0.0), 1)
    idle_max_lag_ms = round(max(measured["idle_lags_ms"], default=0.0), 1)
    request_tail, idle_tail = tail(latencies), tail(measured["idle_latencies_ms"])
    slow_ms = round(measured["slow_request_ms"], 1)
    wait_ms = REQUEST_WAIT_S * 1000
    baseline = (f"before the slow request, the same loop's heartbeat was at most {idle_max_lag_ms:.0f} ms late "
                f"and requests took {idle_tail.describe()}")
    if mode == "block":
        text = (f"Blocking the loop for the slow request's {slow_ms:.0f} ms froze the heartbeat for up to "
                f"{max_lag_ms:.0f} ms ({max_lag_ms / max(slow_ms, 1e-9):.0%} of the block), and the other "
                f"requests took {request_tail.describe()} for a {wait_ms:.0f} ms wait of their own; {baseline}.")
    else:
        how = "awaited" if mode == "await" else "waited in a worker thread"
        text = (f"While the slow request {how} for {slow_ms:.0f} ms, the heartbeat was never more than "
                f"{max_lag_ms:.0f} ms late and the other requests took {request_tail.describe()} "
                f"for a {wait_ms:.0f} ms wait of their own; {baseline}.")
    return {
        "text": text,
        "heartbeat_max_lag_ms": max_lag_ms,
        "idle_heartbeat_max_lag_ms": idle_max_lag_ms,
        "request_tail_ms": round(request_tail.value, 1),
        "request_tail": request_tail.label,
        "idle_request_tail_ms": round(idle_tail.value, 1),
        "idle_request_tail": idle_tail.label,
        "request_max_ms": round(max(latencies, default=0.0), 1),
        "slow_request_ms": slow_ms,
        "heartbeats": len(lags),
        "requests": len(latencies),
    }


# "Edit and run" opens this program: the idea above in a few lines of standard-library Python that a
# reader can change and run (the sandbox has no network and no database: timers, threads, processes).
starting_program = '''\
import asyncio
import time


async def heartbeat():
    for beat in range(6):
        started = time.perf_counter()
        await asyncio.sleep(0.05)
        late_ms = (time.perf_counter() - started - 0.05) * 1000
        print(f"beat {beat}: {late_ms:.0f} ms late")


async def handler():
    await asyncio.sleep(0.1)
    time.sleep(0.2)  # blocks the whole loop; try: await asyncio.sleep(0.2)
    print("handler done")


async def main():
    await asyncio.gather(heartbeat(), handler())


asyncio.run(main())
'''
