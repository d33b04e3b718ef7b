"""CPU on the loop: which heavy steps `to_thread` rescues, and which need a process.

A sandbox event loop (a fresh one, made with `asyncio.run` inside the worker;
the site's own loop is never touched) runs a heartbeat that wants to tick
every 20 ms and serves a stream of small requests, one every 10 ms, each a
real round trip over a loopback TCP socket to an echo server on the same
loop. After a short quiet spell, one heavy step of about `step_ms` runs. What
it does is `work`:

- `wait`: `time.sleep`, a blocking wait that holds no GIL while it sleeps;
- `pure-python`: a Python arithmetic loop, which holds the GIL while it runs;
- `c-releases-gil`: `hashlib.pbkdf2_hmac`, C code that lets go of the GIL.

Where it runs is `offload`: `inline` (on the loop's own thread),
`to_thread` (`asyncio.to_thread`, another thread of the same process) or
`process-pool` (a one-process `ProcessPoolExecutor`, started before the clock
starts, so its start-up is not part of the step).

A reader should see the heartbeat chart spike to the whole step for every
`inline` run; stay flat under `to_thread` for `wait` and `c-releases-gil`;
rise under `to_thread` for `pure-python`, because the loop thread has to win
the GIL back from the busy thread each time it wakes (after up to
`sys.getswitchinterval()`, 5 ms by default), so every loop iteration starts
late and a request that needs several iterations is late several times; and
stay flat again with the process pool, where the step has a GIL of its own.
The quiet spell before the step is the run's own baseline.
"""
import asyncio
import hashlib
import math
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from demos.params import ChoiceParam, IntParam

slug = "cpu-on-the-loop"
title = "CPU on the loop, threads and the GIL"
concept = ("A heavy step on the loop freezes it; to_thread rescues waits and C code that releases the GIL, but "
           "pure-Python work in a thread still starves the loop of the GIL; a process pool keeps it responsive.")
placement = "worker"  # it blocks and burns CPU on purpose, and starts a process: its own sandbox loop, in a worker
time_limit_s = 30.0
lanes = "request"
params = (
    ChoiceParam("work", "pure-python", ("wait", "pure-python", "c-releases-gil"), label="Heavy step",
                help="wait: time.sleep; pure-python: a Python loop holding the GIL; "
                     "c-releases-gil: hashlib.pbkdf2_hmac, which releases the GIL."),
    ChoiceParam("offload", "to_thread", ("inline", "to_thread", "process-pool"), label="Runs",
                help="inline: on the loop's thread; to_thread: asyncio.to_thread; "
                     "process-pool: a ProcessPoolExecutor with one worker process."),
    IntParam("step_ms", 1_000, 200, 3_000, label="Step (ms)",
             help="How long the heavy step takes when it runs alone (CPU work is sized on this machine first)."),
)
smoke_params = {"work": "c-releases-gil", "offload": "process-pool", "step_ms": 200}
lane_states = frozenset({"queued", "waiting", "running", "blocked", "done"})

HEARTBEAT_S = 0.020
REQUEST_EVERY_S = 0.010
QUIET_S = 0.300  # before the step: the run's own baseline
TAIL_S = 0.300  # requests keep arriving this long after the step should have ended
CHUNK_MS = 50  # the step is done in pieces this long, so a cancel never waits for more than one
EXCHANGES_PER_REQUEST = 4  # round trips per request, as a handler that makes a few queries would
LATE_MS = 2.0  # a request that starts later than this after it arrived is drawn as queued
PERCENTILE_MIN_SAMPLES = 100  # fewer samples than this and the summary names the max, not a p99
BUSY_BASELINE_MS = 30.0  # a quiet-spell heartbeat later than this means the machine itself was too busy
# The spawn start method starts a clean interpreter: forking a process that has threads (this worker has
# several) can copy a lock some other thread held at that instant, and 3.11 on Linux forks by default.
POOL_CONTEXT = "spawn"
POOL_START_TIMEOUT_S = 20.0

WORK_LABELS = {"wait": "time.sleep", "pure-python": "a pure-Python loop", "c-releases-gil": "hashlib.pbkdf2_hmac"}
OFFLOAD_LABELS = {"inline": "on the loop's own thread", "to_thread": "in a thread via asyncio.to_thread",
                  "process-pool": "in a process pool"}


def python_loop(rounds: int) -> int:
    """Pure-Python arithmetic: bytecode all the way, so the GIL is held for the whole of it."""
    value = 0
    for number in range(rounds):
        value = (value * 31 + number) % 1_000_003
    return value


def pbkdf2(iterations: int) -> bytes:
    """Key stretching in OpenSSL; CPython releases the GIL for the duration of the C call."""
    return hashlib.pbkdf2_hmac("sha256", b"correct horse", b"battery staple", iterations)


def do_chunk(work: str, amount: float) -> None:
    """One piece of the heavy step: `amount` seconds of sleep, Python rounds or PBKDF2 iterations."""
    if work == "wait":
        time.sleep(amount)
    elif work == "pure-python":
        python_loop(int(amount))
    else:
        pbkdf2(int(amount))


def _amount_per_ms(work: str) -> float:
    """How much of `work` fits in a millisecond on this machine, measured before the clock starts."""
    if work == "wait":
        return 0.001
    sample = 200_000 if work == "pure-python" else 20_000
    best_s = math.inf
    for _ in range(3):  # the fastest of three: a busy moment should not make the step longer
        started = time.perf_counter()
        do_chunk(work, sample)
        best_s = min(best_s, time.perf_counter() - started)
    return sample / (best_s * 1000)


def _percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile of a non-empty list."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _noop() -> None:
    """Run once in the pool before the clock starts, so its process is up and has imported this module."""


async def _serve(work: str, offload: str, chunks: list[float], request_count: int, pool, emit, run_ms) -> dict:
    """Run the heartbeat, the request stream and the heavy step on this (sandbox) loop."""
    loop = asyncio.get_running_loop()
    heartbeat_lags: list[tuple[float, float]] = []  # (when it was due, lag in ms)
    request_latencies: list[tuple[float, float]] = []  # (when it arrived, latency in ms)
    stopping = False

    async def echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(line)
            await writer.drain()
        writer.close()

    async def heartbeat() -> None:
        while not stopping:
            due = time.perf_counter() + HEARTBEAT_S
            await asyncio.sleep(HEARTBEAT_S)
            lag_ms = max(0.0, (time.perf_counter() - due) * 1000)
            heartbeat_lags.append((due, lag_ms))
            emit("metric", name="heartbeat_lag_ms", value=round(lag_ms, 1), unit="ms")

    async def small_request(lane: int, arrived: float, port: int) -> None:
        # `arrived` is when the client wanted it served; a frozen loop cannot even start it.
        if (time.perf_counter() - arrived) * 1000 > LATE_MS:
            emit("state", lane=lane, state="queued", t=run_ms(arrived))
        emit("state", lane=lane, state="waiting")
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for exchange in range(EXCHANGES_PER_REQUEST):
            query = b"request %d query %d\n" % (lane, exchange)
            writer.write(query)
            reply = await reader.readline()
            if reply != query:
                raise RuntimeError(f"request {lane} sent {query!r} to the echo server and got {reply!r} back")
        latency_ms = (time.perf_counter() - arrived) * 1000
        writer.close()
        await writer.wait_closed()
        request_latencies.append((arrived, latency_ms))
        emit("state", lane=lane, state="done")
        emit("metric", name="request_latency_ms", value=round(latency_ms, 1), unit="ms")

    async def request_stream(group: asyncio.TaskGroup, port: int) -> None:
        stream_started = time.perf_counter()
        for lane in range(1, request_count + 1):
            arrives = stream_started + (lane - 1) * REQUEST_EVERY_S
            delay = arrives - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            group.create_task(small_request(lane, arrives, port))

    async def heavy_step() -> tuple[float, float] | BrokenProcessPool:
        await asyncio.sleep(QUIET_S)
        state = "blocked" if work == "wait" else "running"
        emit("state", lane=0, state=state, label=f"{WORK_LABELS[work]} {OFFLOAD_LABELS[offload]}")
        started = time.perf_counter()
        for amount in chunks:
            if offload == "inline":
                do_chunk(work, amount)  # the mistake the inline runs exist to show
            elif offload == "to_thread":
                await asyncio.to_thread(do_chunk, work, amount)
            else:
                try:
                    await loop.run_in_executor(pool, do_chunk, work, amount)
                except BrokenProcessPool as broken:
                    return broken  # raised after the task group, so the reader sees this error and not a group
            emit.check_cancelled()
        ended = time.perf_counter()
        emit("state", lane=0, state="done")
        return started, ended

    server = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=512)
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(heartbeat())
            step = group.create_task(heavy_step())
            stream = group.create_task(request_stream(group, server.sockets[0].getsockname()[1]))
            outcome = await step
            if isinstance(outcome, BaseException):
                stream.cancel()
            else:
                await stream
            stopping = True
    finally:
        server.close()
        await server.wait_closed()
    if isinstance(outcome, BaseException):
        raise RuntimeError("the process pool's worker process died during the heavy step") from outcome
    return {"heartbeat_lags": heartbeat_lags, "request_latencies": request_latencies, "step": outcome}


def run(params, emit):
    """Serve the stream on a fresh sandbox loop in this worker thread, with the heavy step where asked."""
    work, offload, step_ms_wanted = params["work"], params["offload"], params["step_ms"]
    chunk_count = max(1, round(step_ms_wanted / CHUNK_MS))
    per_ms = _amount_per_ms(work)
    chunks = [per_ms * step_ms_wanted / chunk_count] * chunk_count
    stream_s = QUIET_S + step_ms_wanted / 1000 + TAIL_S
    request_count = round(stream_s / REQUEST_EVERY_S)

    pool = None
    try:
        if offload == "process-pool":
            pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context(POOL_CONTEXT))
            try:
                pool.submit(_noop).result(timeout=POOL_START_TIMEOUT_S)
            except (BrokenProcessPool, TimeoutError) as failure:
                raise RuntimeError(f"the process pool's worker process did not start ({failure!r})") from failure
        clock_origin = time.perf_counter()
        origin_ms = emit("lanes", count=request_count + 1,
                         labels=["heavy step"] + [f"request {number}" for number in range(1, request_count + 1)])

        def run_ms(moment: float) -> float:
            return origin_ms + (moment - clock_origin) * 1000

        measured = asyncio.run(_serve(work, offload, chunks, request_count, pool, emit, run_ms))
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)  # at most one chunk still running: a short wait
    return _summary(work, offload, measured)


def _median(values: list[float]) -> float:
    return round(_percentile(values, 0.5), 1) if values else 0.0


def _summary(work: str, offload: str, measured: dict) -> dict:
    """The measured claim, in words and numbers: during the step against the quiet spell before it."""
    started, ended = measured["step"]
    lags = [lag for _, lag in measured["heartbeat_lags"]]
    latencies = [latency for _, latency in measured["request_latencies"]]
    # The baseline is what was over before the step began; what arrived during the step is the comparison.
    quiet_lags = [lag for due, lag in measured["heartbeat_lags"] if due + lag / 1000 < started]
    quiet_latencies = [latency for arrived, latency in measured["request_latencies"]
                       if arrived + latency / 1000 < started]
    step_latencies = [latency for arrived, latency in measured["request_latencies"] if started <= arrived < ended]
    step_ms = round((ended - started) * 1000, 1)
    max_lag_ms = round(max(lags, default=0.0), 1)
    quiet_max_lag_ms = round(max(quiet_lags, default=0.0), 1)
    quiet_median_ms, step_median_ms = _median(quiet_latencies), _median(step_latencies)
    spread: dict[str, float] = {}
    if len(lags) >= PERCENTILE_MIN_SAMPLES:
        spread["heartbeat_p99_lag_ms"] = round(_percentile(lags, 0.99), 1)
    if len(latencies) >= PERCENTILE_MIN_SAMPLES:
        spread["request_p99_ms"] = round(_percentile(latencies, 0.99), 1)
        tail = f"p99 of all {len(latencies)} requests: {spread['request_p99_ms']:.0f} ms"
    else:
        tail = f"max of all {len(latencies)} requests: {max(latencies, default=0.0):.0f} ms"

    if max_lag_ms >= 0.5 * step_ms:
        verdict = "the loop froze for the whole step"
    elif step_median_ms > 2.5 * max(quiet_median_ms, 1.0):
        verdict = "the loop kept turning, but every turn started late"
    else:
        verdict = "the loop stayed responsive"
    text = (f"With {WORK_LABELS[work]} {OFFLOAD_LABELS[offload]} for {step_ms:.0f} ms, {verdict}: requests that "
            f"arrived during the step took {step_median_ms:.1f} ms at the median against {quiet_median_ms:.1f} ms "
            f"before it, and the 20 ms heartbeat was up to {max_lag_ms:.0f} ms late (max of {len(lags)} ticks; at most "
            f"{quiet_max_lag_ms:.0f} ms before the step); {tail}.")
    if quiet_max_lag_ms > BUSY_BASELINE_MS:
        text += (f" Even before the step the heartbeat lagged {quiet_max_lag_ms:.0f} ms: the machine was busy, "
                 "so read this run as noise.")
    return {
        "text": text,
        "heartbeat_max_lag_ms": max_lag_ms,
        **spread,
        "request_max_ms": round(max(latencies, default=0.0), 1),
        "step_ms": step_ms,
        "quiet_request_median_ms": quiet_median_ms,
        "step_request_median_ms": step_median_ms,
        "quiet_heartbeat_max_lag_ms": quiet_max_lag_ms,
        "heartbeats": len(lags),
        "requests": len(latencies),
        "switch_interval_ms": round(sys.getswitchinterval() * 1000, 1),
    }
