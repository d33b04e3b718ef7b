"""The cpu-on-the-loop sandbox: one event loop, its heartbeat and requests, and one heavy step.

    python sandbox.py WORK OFFLOAD STEP_MS REQUESTS --max-seconds S

A process of its own rather than a loop inside the Celery worker: a prefork
worker is a daemonic process, and `multiprocessing` refuses to start children
from one, so the process pool could not exist there; and a process with only
this loop's threads in it measures the GIL without the worker's own threads
taking turns too. It imports nothing from the site, so spawning the pool's
worker (which re-imports this file) is quick.

It prints one JSON line per event: {"kind", "at", ...fields}, `at` being
`time.perf_counter()` (the system-wide monotonic clock on Linux, so the
parent can place it on the run's timeline), first {"kind": "ready"} once the
work is sized and the pool is up, last {"kind": "measured", ...} with every
sample, or {"kind": "failed", "reason"} if the pool's worker died.
"""
import argparse
import asyncio
import ctypes
import hashlib
import json
import math
import multiprocessing
import signal
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

HEARTBEAT_S = 0.020
REQUEST_EVERY_S = 0.010
QUIET_S = 0.300  # before the step: the run's own baseline
EXCHANGES_PER_REQUEST = 4  # round trips per request, as a handler that makes a few queries would
LATE_MS = 2.0  # a request that starts later than this after it arrived is drawn as queued
# Spawn starts a clean interpreter. Forking a process that has threads can copy a lock another thread held at
# that instant into a child that will never release it; 3.11 on Linux forks by default (3.14: forkserver).
POOL_CONTEXT = "spawn"
PR_SET_PDEATHSIG = 1

WORK_LABELS = {"wait": "time.sleep", "pure-python": "a pure-Python loop", "c-releases-gil": "hashlib.pbkdf2_hmac"}
OFFLOAD_LABELS = {"inline": "on the loop's own thread", "to_thread": "in a thread via asyncio.to_thread",
                  "process-pool": "in a process pool"}


def report(kind: str, **fields) -> None:
    """One event for the parent, as a JSON line."""
    print(json.dumps({"kind": kind, "at": time.perf_counter(), **fields}), flush=True)


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent goes, so a stopped run leaves nothing behind."""
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the alarm still applies to the sandbox
        pass


def python_loop(rounds: int) -> int:
    """Pure-Python arithmetic: bytecode all the way, so the GIL is held for the whole of it."""
    value = 0
    for number in range(rounds):
        value = (value * 31 + number) % 1_000_003
    return value


def pbkdf2(iterations: int) -> bytes:
    """Key stretching in OpenSSL; CPython releases the GIL for the whole C call."""
    return hashlib.pbkdf2_hmac("sha256", b"correct horse", b"battery staple", iterations)


def heavy_work(work: str, amount: float) -> None:
    """The heavy step: `amount` seconds of sleep, Python rounds or PBKDF2 iterations."""
    if work == "wait":
        time.sleep(amount)
    elif work == "pure-python":
        python_loop(int(amount))
    else:
        pbkdf2(int(amount))


def amount_for(work: str, step_ms: int) -> float:
    """How much of `work` takes about `step_ms` here when run alone, measured before the clock starts."""
    if work == "wait":
        return step_ms / 1000
    sample = 200_000 if work == "pure-python" else 20_000
    best_s = math.inf
    for _ in range(3):  # the fastest of three: a busy moment should not make the step longer
        started = time.perf_counter()
        heavy_work(work, sample)
        best_s = min(best_s, time.perf_counter() - started)
    return sample * step_ms / (best_s * 1000)


async def serve(work: str, offload: str, amount: float, request_count: int, pool) -> dict:
    """Run the heartbeat, the request stream and the heavy step on this loop; return every sample."""
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
            report("metric", name="heartbeat_lag_ms", value=round(lag_ms, 1), unit="ms")

    async def small_request(lane: int, arrived: float, port: int) -> None:
        # `arrived` is when the client wanted it served; a frozen loop cannot even start it.
        if (time.perf_counter() - arrived) * 1000 > LATE_MS:
            report("state", lane=lane, state="queued", at=arrived)
        report("state", lane=lane, state="waiting")
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
        report("state", lane=lane, state="done")
        report("metric", name="request_latency_ms", value=round(latency_ms, 1), unit="ms")

    async def request_stream(group: asyncio.TaskGroup, port: int) -> None:
        stream_started = time.perf_counter()
        for lane in range(1, request_count + 1):
            arrives = stream_started + (lane - 1) * REQUEST_EVERY_S
            delay = arrives - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            group.create_task(small_request(lane, arrives, port))

    async def heavy_step() -> tuple[float, float]:
        await asyncio.sleep(QUIET_S)
        state = "blocked" if work == "wait" else "running"
        report("state", lane=0, state=state, label=f"{WORK_LABELS[work]} {OFFLOAD_LABELS[offload]}")
        started = time.perf_counter()
        if offload == "inline":
            heavy_work(work, amount)  # the mistake the inline runs exist to show
        elif offload == "to_thread":
            await asyncio.to_thread(heavy_work, work, amount)
        else:
            await loop.run_in_executor(pool, heavy_work, work, amount)
        ended = time.perf_counter()
        report("state", lane=0, state="done")
        return started, ended

    server = await asyncio.start_server(echo, "127.0.0.1", 0, backlog=512)
    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(heartbeat())
            step = group.create_task(heavy_step())
            await request_stream(group, server.sockets[0].getsockname()[1])
            started, ended = await step
            stopping = True
    finally:
        server.close()
        await server.wait_closed()
    return {"heartbeat_lags": heartbeat_lags, "request_latencies": request_latencies, "step": [started, ended]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", choices=sorted(WORK_LABELS))
    parser.add_argument("offload", choices=sorted(OFFLOAD_LABELS))
    parser.add_argument("step_ms", type=int)
    parser.add_argument("requests", type=int)
    parser.add_argument("--max-seconds", type=int, default=60)
    args = parser.parse_args()
    die_with_parent()
    signal.alarm(args.max_seconds)
    amount = amount_for(args.work, args.step_ms)
    pool = None
    try:
        if args.offload == "process-pool":
            # Started, and its worker up, before the clock starts: its start-up is not part of the step.
            pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context(POOL_CONTEXT),
                                       initializer=die_with_parent)
            pool.submit(time.sleep, 0).result()
        report("ready")
        try:
            measured = asyncio.run(serve(args.work, args.offload, amount, args.requests, pool))
        except* BrokenProcessPool:
            report("failed", reason="the process pool's worker process died during the heavy step")
            sys.exit(1)
        report("measured", **measured)
    finally:
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


if __name__ == "__main__":
    main()
