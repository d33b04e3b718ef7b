"""Awaiting in a loop, gathering, and gathering behind a semaphore.

`calls` independent calls go to a downstream service that answers each after
`call_ms` but admits at most `limit` calls at once: any call beyond that is
turned away at once, like an HTTP 429. In the default `network` mode the
service is real: each call is a round trip over TCP to the upstream process
(demos/upstream.py), which answers after `call_ms` and itself counts and
limits this run's calls. In `timer` mode a pretend service in this process
stands in, waiting on `asyncio.sleep`. The client makes the calls in one of
three ways:

- `loop`: `for ...: await call()`, one after another;
- `gather`: `asyncio.gather` of all of them at once;
- `capped`: the same gather, each call behind an `asyncio.Semaphore(cap)`.

A reader should see `loop` take about the sum of the waits, `gather` about one
wait but with every call over the limit failing in red, and `capped` stay at
`cap` calls in flight, lose nothing, and still finish far sooner than `loop`.
"""
import asyncio
import math
import secrets
import time

from demos.params import ChoiceParam, IntParam, ParamError
from demos.stats import ratio_text
from demos.upstream import UpstreamSession, UpstreamUnavailable

slug = "gather-vs-loop"
title = "Awaiting in a loop, gather, and a capped gather"
concept = "Independent awaits overlap with gather; a semaphore keeps the overlap within what the downstream service accepts."
placement = "loop"  # only awaits sockets or timers, with bounded work
time_limit_s = 45.0
lanes = "call"
lane_states = frozenset({"waiting", "queued", "done", "failed"})
headline = ("total_ms", "longest_call_ms", "max_in_flight")
summary_fields = {
    "total_ms": ("Time for every call", "ms"), "max_in_flight": ("Most calls in flight at once", ""),
    "rejected": ("Calls the service refused", ""), "answered": ("Calls answered", ""),
    "sum_of_waits_ms": ("Sum of the calls' waits", "ms"), "longest_call_ms": ("Longest single call", "ms"),
    "peak_admitted": ("Most calls the service admitted at once", ""),
}
waits = "real socket round trips to an upstream process (timer mode: asyncio.sleep standing in)"
params = (
    ChoiceParam("mode", "gather", ("loop", "gather", "capped"), label="Mode",
                help="loop awaits one call at a time; gather starts them all; capped gathers behind a semaphore."),
    ChoiceParam("io", "network", ("network", "timer"), label="Service",
                help="network: a real server in another process answers each call over TCP; "
                     "timer: a pretend service here waits on asyncio.sleep."),
    IntParam("calls", 40, 1, 500, label="Calls", help="How many independent calls to make."),
    IntParam("cap", 10, 1, 200, label="Cap", help="capped mode: the semaphore's size, our most calls in flight."),
    IntParam("limit", 20, 1, 500, label="Service limit",
             help="The most calls the downstream service admits at once; it rejects the rest."),
    IntParam("call_ms", 100, 10, 1_000, label="Call time (ms)", help="How long the service takes to answer one call."),
)
# Small enough for the test suite's run over every demo.
smoke_params = {"calls": 5, "call_ms": 20}

REJECT_S = 0.005  # a rejection is fast, but still a round trip
CHUNK = 100  # tasks created between two yields to the loop
MAX_PLANNED_MS = 30_000


def check_params(values):
    """Reject combinations that would outlast the time limit."""
    mode, calls, call_ms = values["mode"], values["calls"], values["call_ms"]
    if mode == "loop" and calls * call_ms > MAX_PLANNED_MS:
        raise ParamError("loop mode with these values would outlast the time limit; use fewer calls or shorter ones")
    if mode == "capped" and math.ceil(calls / values["cap"]) * call_ms > MAX_PLANNED_MS:
        raise ParamError("capped mode with these values would outlast the time limit; raise cap or use fewer calls")


class ServiceBusy(Exception):
    """The downstream service turned a call away (its HTTP 429)."""


class PretendService:
    """The timer stand-in: answers after `call_s`; admits at most `limit` calls at once and rejects the rest."""

    def __init__(self, *, limit: int, call_s: float) -> None:
        self.limit = limit
        self.call_s = call_s
        self.admitted = 0
        self.peak_admitted = 0

    async def call(self) -> None:
        """One call: answered after `call_s`, or ServiceBusy after a short pause when over the limit."""
        if self.admitted >= self.limit:
            await asyncio.sleep(REJECT_S)
            raise ServiceBusy()
        self.admitted += 1
        self.peak_admitted = max(self.peak_admitted, self.admitted)
        try:
            await asyncio.sleep(self.call_s)
        finally:
            self.admitted -= 1


class UpstreamService:
    """The real service: the upstream process answers each call after `call_ms` and limits this run's pool."""

    def __init__(self, upstream: UpstreamSession, *, limit: int, call_ms: int) -> None:
        self.upstream = upstream
        self.limit = limit
        self.call_ms = call_ms
        self.pool = secrets.token_hex(8)  # the upstream counts this run's calls apart from any other's
        self.peak_admitted = 0

    async def call(self) -> None:
        """One round trip; ServiceBusy when the upstream turned it away."""
        answer = await self.upstream.wait(self.call_ms, pool=self.pool, limit=self.limit)
        if not answer.ok:
            raise ServiceBusy()
        self.peak_admitted = max(self.peak_admitted, answer.admitted)


async def run(params, emit):
    """Make the calls in the chosen way; return the measured total, peak in flight and rejections."""
    if params["io"] == "timer":
        return await make_calls(params, emit, PretendService(limit=params["limit"], call_s=params["call_ms"] / 1000))
    async with UpstreamSession(connections=params["calls"]) as upstream:
        summary = await make_calls(params, emit, UpstreamService(upstream, limit=params["limit"],
                                                                   call_ms=params["call_ms"]))
    tally = upstream.tally
    summary.update(tally.describe())
    summary["text"] += (f" Each call was a round trip over TCP to the upstream process "
                        f"(pid {', '.join(map(str, sorted(tally.answered_by))) or 'none answered'}), "
                        f"which counted and limited them: {tally.requests_sent} requests on "
                        f"{tally.connections_made} connections.")
    return summary


async def make_calls(params, emit, service: PretendService | UpstreamService) -> dict:
    """Call `service` in the chosen way and measure the total, the most in flight and the rejections."""
    mode, calls = params["mode"], params["calls"]
    failures: list[UpstreamUnavailable] = []
    in_flight = max_in_flight = rejected = finished = 0
    call_times_ms: list[float] = []
    progress_step = max(1, calls // 50)
    emit("lanes", count=calls)

    async def make_call(index: int) -> None:
        nonlocal in_flight, max_in_flight, rejected, finished
        in_flight += 1
        max_in_flight = max(max_in_flight, in_flight)
        emit("state", lane=index, state="waiting")
        emit("metric", name="in_flight", value=in_flight, unit="calls")
        started = time.perf_counter()
        try:
            await service.call()
            call_times_ms.append((time.perf_counter() - started) * 1000)
            emit("state", lane=index, state="done")
        except ServiceBusy:
            rejected += 1
            emit("state", lane=index, state="failed", label="rejected: service over its limit")
            emit("counter", name="rejected", value=rejected)
        except UpstreamUnavailable as error:
            failures.append(error)
            emit("state", lane=index, state="failed", label="no answer from the upstream")
        in_flight -= 1
        finished += 1
        emit("metric", name="in_flight", value=in_flight, unit="calls")
        if finished % progress_step == 0 or finished == calls:
            emit("progress", done=finished, total=calls)

    semaphore = asyncio.Semaphore(params["cap"])

    async def make_capped_call(index: int) -> None:
        async with semaphore:
            await make_call(index)

    started = time.perf_counter()
    if mode == "loop":
        for index in range(calls):
            emit("state", lane=index, state="queued")
        for index in range(calls):
            await make_call(index)
    else:
        if mode == "capped":
            for index in range(calls):
                emit("state", lane=index, state="queued")
        one_call = make_capped_call if mode == "capped" else make_call
        # A TaskGroup waits like gather, and cancels the calls if the run is cancelled mid-way.
        async with asyncio.TaskGroup() as group:
            for first in range(0, calls, CHUNK):
                for index in range(first, min(first + CHUNK, calls)):
                    group.create_task(one_call(index))
                await asyncio.sleep(0)  # let the site's loop breathe between chunks
    total_ms = round((time.perf_counter() - started) * 1000, 1)  # rounded once: text and number agree
    if failures:
        raise UpstreamUnavailable(f"{len(failures)} of {calls} calls got no answer: {failures[0]}")

    answered = len(call_times_ms)
    sum_ms = sum(call_times_ms)
    longest_ms = max(call_times_ms, default=0.0)
    if mode == "loop":
        text = (f"Awaited one after another, {calls} calls took {total_ms:.0f} ms, "
                f"{ratio_text(total_ms, sum_ms, 'the sum of their waits') or 'with no answered call to compare with'}, "
                f"with never more than {max_in_flight} in flight.")
    elif mode == "gather":
        # One call, or none answered, leaves nothing for a ratio to say.
        against_longest = ((ratio_text(total_ms, longest_ms, "the longest single call", digits=1) if answered > 1 else None)
                           or f"{answered} answered: nothing to overlap")
        text = (f"gather put {max_in_flight} calls in flight at once and finished in {total_ms:.0f} ms "
                f"({against_longest}), against {sum_ms:.0f} ms "
                f"of waiting in total; ")
        text += (f"the service admitted only {service.peak_admitted} at a time and rejected {rejected}."
                 if rejected else "the service admitted every one.")
    else:
        text = (f"Behind the semaphore, at most {max_in_flight} calls were in flight: the service answered "
                f"{answered} of {calls} in {total_ms:.0f} ms ({sum_ms:.0f} ms of waiting in total) "
                f"and rejected {rejected}.")
    return {
        "text": text,
        "total_ms": total_ms,
        "max_in_flight": max_in_flight,
        "rejected": rejected,
        "answered": answered,
        "sum_of_waits_ms": round(sum_ms, 1),
        "longest_call_ms": round(longest_ms, 1),
        "peak_admitted": service.peak_admitted,
    }


# "Edit and run" opens this program: the idea above in a few lines of standard-library Python that a
# reader can change and run (the sandbox has no network and no database: timers, threads, processes).
starting_program = '''\
import asyncio
import time


async def call_service(n):
    await asyncio.sleep(0.1)  # stands in for one network round trip
    return n


async def capped(limit, n):
    async with limit:
        return await call_service(n)


async def main():
    started = time.perf_counter()
    for n in range(4):
        await call_service(n)
    print(f"awaited one by one: {time.perf_counter() - started:.2f} s")

    started = time.perf_counter()
    await asyncio.gather(*(call_service(n) for n in range(4)))
    print(f"gather: {time.perf_counter() - started:.2f} s")

    limit = asyncio.Semaphore(2)
    started = time.perf_counter()
    await asyncio.gather(*(capped(limit, n) for n in range(4)))
    print(f"gather, at most 2 at once: {time.perf_counter() - started:.2f} s")


asyncio.run(main())
'''
