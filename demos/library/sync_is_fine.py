"""Sync is fine: where nothing waits, async adds cost and no speed.

Two measurements in one run, on a sandbox event loop made inside `run` (in a
worker: it burns CPU on purpose).

1. The same pure computation, `steps` rounds of integer arithmetic, done three
   ways: a plain `def` loop; an `async def` loop that awaits an `async def`
   helper for every step; and the plain loop handed to `asyncio.to_thread`.
   The three take turns, `REPEATS` times each, and the best time of each is
   reported (the usual way to time code on a shared machine: the fastest run
   is the one the least disturbed). All three must compute the same number.
2. A chain of `chain_steps` dependent steps, each waiting `chain_step_ms` of
   pretend I/O on the previous step's result: awaited one after another, then
   started together under `asyncio.gather` with each step awaiting the one
   before it. For contrast, the same number of independent steps under gather.

A reader should see the async version of the computation come out slower
(the gap divided by the number of steps is the price of one await of a
coroutine that never suspends), `to_thread` no faster than plain code, the
dependent chain take the sum of its steps however it is arranged, and only
the independent steps overlap. A difference smaller than the spread between
repeats is reported as noise, not as a result.
"""
import asyncio
import time

from demos.base import RunCancelled, RunTimedOut
from demos.params import IntParam

slug = "sync-is-fine"
title = "When async buys nothing"
concept = ("Async overlaps waits and nothing else: on pure computation it only adds the cost of each await, "
           "and steps that need each other's results run in turn whatever the arrangement.")
placement = "worker"  # it burns CPU on purpose: its own sandbox loop, in a worker
burns_cpu = True  # it times computation: one reader's runs take turns
time_limit_s = 60.0
lanes = "arrangement"
headline = ("overhead_per_await_us",)
summary_fields = {
    "total_ms": ("Computation time", "ms"), "spread_ms": ("Spread between repeats", "ms"),
    "overhead_per_await_us": ("Cost per await", "µs"), "result": ("Computed value", ""),
    "chain_ms": ("Chain of steps", "ms"), "chain_waits_ms": ("Sum of the chain's waits", "ms"),
    # The same three chain times as flat numbers, so a lesson's prediction can name one (a key must be a scalar).
    "chain_in_order_ms": ("Dependent steps awaited in order", "ms"),
    "chain_gathered_ms": ("Dependent steps under gather", "ms"),
    "independent_gathered_ms": ("Independent steps under gather", "ms"),
    "chain_result": ("Chain's value", ""), "steps": ("Steps computed", ""), "repeats": ("Repeats", ""),
}
waits = "none for the computation (CPU work); asyncio.sleep standing in for I/O in the chain"
lane_states = frozenset({"running", "waiting", "queued", "done"})
params = (
    IntParam("steps", 200_000, 1_000, 1_000_000, label="Computation steps",
             help="How many rounds of integer arithmetic each version of the computation does."),
    IntParam("chain_steps", 5, 2, 20, label="Dependent steps", help="How many steps the chain has."),
    IntParam("chain_step_ms", 40, 5, 200, label="Wait per step (ms)",
             help="How long each chain step waits on its pretend I/O."),
)
# Small enough for the test suite's run over every demo.
smoke_params = {"steps": 20_000, "chain_steps": 3, "chain_step_ms": 10}

REPEATS = 7  # the best of seven: a shared 2-core machine disturbs some runs by more than the gap measured
MODULUS = 2_147_483_647  # a Park-Miller generator: results stay below 2**31, exact in JSON and JavaScript
MULTIPLIER = 48_271
SEED = 1
COMPUTE_LANES = ("plain def", "async def, await per step", "asyncio.to_thread")
COMPUTE_KEYS = ("plain", "async", "to_thread")


def compute_plain(steps: int) -> int:
    """The pure computation: `steps` rounds of the generator, in a plain loop."""
    value = SEED
    for _ in range(steps):
        value = value * MULTIPLIER % MODULUS
    return value


async def _next_value(value: int) -> int:
    # An `async def` with nothing to wait on: awaiting it never reaches the event loop.
    return value * MULTIPLIER % MODULUS


async def compute_async(steps: int) -> int:
    """The same computation with an await per step."""
    value = SEED
    for _ in range(steps):
        value = await _next_value(value)
    return value


async def _measure_computation(steps: int, emit, run_ms) -> dict:
    """Time the three versions, interleaved; return every repeat's time and the results."""
    times: dict[str, list[float]] = {key: [] for key in COMPUTE_KEYS}
    results: dict[str, int] = {}
    cpu_s = 0.0  # CPU time of the threads that computed, read with time.thread_time in each
    for repeat in range(REPEATS):
        for lane, key in enumerate(COMPUTE_KEYS):
            emit.check_cancelled()
            label = f"run {repeat + 1} of {REPEATS}"
            emit("state", lane=lane, state="running", label=label if key != "to_thread" else f"{label}, in a thread")
            started, cpu_started = time.perf_counter(), time.thread_time()
            if key == "plain":
                value = compute_plain(steps)
            elif key == "async":
                value = await compute_async(steps)
            else:
                value, thread_cpu_s = await asyncio.to_thread(_compute_timed, steps)
                cpu_s += thread_cpu_s
            ended = time.perf_counter()
            if key != "to_thread":
                cpu_s += time.thread_time() - cpu_started
            emit("state", lane=lane, state="done", t=run_ms(ended))
            times[key].append((ended - started) * 1000)
            if results.setdefault(key, value) != value:
                raise AssertionError(f"{key} gave {value}, then {results[key]}")
        emit("progress", done=repeat + 1, total=REPEATS + 1)
    if len(set(results.values())) != 1:
        raise AssertionError(f"the three versions disagree: {results}")
    wall_s = sum(sum(values) for values in times.values()) / 1000
    return {"times": times, "result": results["plain"], "cores_busy": cpu_s / wall_s if wall_s > 0 else 0.0}


def _compute_timed(steps: int) -> tuple[int, float]:
    """compute_plain in this (pool) thread, with the CPU time it took there."""
    cpu_started = time.thread_time()
    value = compute_plain(steps)
    return value, time.thread_time() - cpu_started


async def _measure_chain(chain_steps: int, step_s: float, first_lane: int, emit, run_ms) -> dict:
    """The dependent chain in order and gathered, then independent steps gathered; return their times."""

    async def step(lane: int, value: int) -> int:
        emit("state", lane=lane, state="waiting", label="pretend I/O")
        await asyncio.sleep(step_s)
        emit("state", lane=lane, state="done")
        return value * MULTIPLIER % MODULUS

    async def dependent_step(lane: int, previous: asyncio.Task | None) -> int:
        if previous is not None:
            emit("state", lane=lane, state="queued", label="awaiting the previous step")
            value = await previous
        else:
            value = SEED
        return await step(lane, value)

    lanes_in_order = range(first_lane, first_lane + chain_steps)
    started = time.perf_counter()
    value = SEED
    for lane in lanes_in_order:
        value = await step(lane, value)
    in_order_ms = (time.perf_counter() - started) * 1000
    in_order_result = value
    emit.check_cancelled()

    started = time.perf_counter()
    steps: list[asyncio.Task] = []
    for lane in range(first_lane + chain_steps, first_lane + 2 * chain_steps):
        steps.append(asyncio.create_task(dependent_step(lane, steps[-1] if steps else None)))
    gathered_results = await asyncio.gather(*steps)
    gathered_ms = (time.perf_counter() - started) * 1000
    emit.check_cancelled()

    started = time.perf_counter()
    await asyncio.gather(*(step(lane, SEED) for lane in range(first_lane + 2 * chain_steps, first_lane + 3 * chain_steps)))
    independent_ms = (time.perf_counter() - started) * 1000
    if gathered_results[-1] != in_order_result:
        raise AssertionError(f"the chain gave {in_order_result} in order but {gathered_results[-1]} gathered")
    return {"in_order_ms": in_order_ms, "gathered_ms": gathered_ms, "independent_ms": independent_ms,
            "result": in_order_result}


async def _measure(params, emit, run_ms) -> dict:
    computation = await _measure_computation(params["steps"], emit, run_ms)
    chain = await _measure_chain(params["chain_steps"], params["chain_step_ms"] / 1000, len(COMPUTE_LANES), emit, run_ms)
    emit("progress", done=REPEATS + 1, total=REPEATS + 1)
    return {"computation": computation, "chain": chain}


def _clearly_slower(slow: list[float], fast: list[float]) -> bool:
    """Every repeat of `slow` took longer than every repeat of `fast`: a gap no repeat's noise explains."""
    return min(slow) > max(fast)


def run(params, emit):
    """Measure both parts on a fresh sandbox loop in this worker thread; return the times and what they show."""
    steps, chain_steps, step_ms = params["steps"], params["chain_steps"], params["chain_step_ms"]
    labels = list(COMPUTE_LANES)
    for arrangement in ("chain, awaited in order", "chain, gathered", "independent, gathered"):
        labels += [f"{arrangement}: step {number}" for number in range(1, chain_steps + 1)]
    clock_origin = time.perf_counter()
    origin_ms = emit("lanes", count=len(labels), labels=labels)

    def run_ms(moment: float) -> float:
        return origin_ms + (moment - clock_origin) * 1000

    try:
        measured = asyncio.run(_measure(params, emit, run_ms))
    except* (RunCancelled, RunTimedOut) as stopped:
        # A gather or task may wrap the stop signal emit raised; the task runner expects it bare.
        raise stopped.exceptions[0] from None

    times = measured["computation"]["times"]
    total_ms = {key: round(min(times[key]), 1) for key in COMPUTE_KEYS}
    spread_ms = {key: round(max(times[key]) - min(times[key]), 1) for key in COMPUTE_KEYS}
    overhead_per_await_us = round((min(times["async"]) - min(times["plain"])) / steps * 1000, 3)
    chain = measured["chain"]
    chain_ms = {"in_order": round(chain["in_order_ms"], 1), "gathered": round(chain["gathered_ms"], 1),
                "independent_gathered": round(chain["independent_ms"], 1)}
    waits_ms = chain_steps * step_ms

    if _clearly_slower(times["async"], times["plain"]):
        async_part = (f"awaiting a coroutine per step made the same computation take {total_ms['async']} ms "
                      f"instead of {total_ms['plain']} ms, about {overhead_per_await_us} µs per await")
    elif _clearly_slower(times["plain"], times["async"]):
        async_part = (f"the async version ({total_ms['async']} ms) beat the plain loop ({total_ms['plain']} ms) "
                      f"in every repeat, which this demo cannot explain: run it again")
    else:
        async_part = (f"the async version ({total_ms['async']} ms) and the plain loop ({total_ms['plain']} ms) "
                      f"differed by less than their repeats varied, so any cost per await was within noise here")
    if _clearly_slower(times["plain"], times["to_thread"]) or _clearly_slower(times["to_thread"], times["plain"]):
        change = total_ms["to_thread"] / total_ms["plain"] - 1
        thread_part = (f"to_thread took {total_ms['to_thread']} ms against plain's {total_ms['plain']} ms "
                       f"({change:+.0%}) while the loop awaited it throughout: one thread did all the work either way")
    else:
        thread_part = (f"to_thread ({total_ms['to_thread']} ms) and plain ({total_ms['plain']} ms) were within "
                       f"noise of each other: one thread did all the work either way")
    cores_busy = round(measured["computation"]["cores_busy"], 2)
    if cores_busy < 0.5:  # the computing thread had under half a core: the times measure the machine
        thread_part += (f" (but the computing thread kept only {cores_busy:.2f} cores busy: other work shared the CPU, "
                        "so these times are noise, not a finding)")
    else:
        thread_part += f" ({cores_busy:.2f} cores busy while it computed)"
    text = (f"All three computed {measured['computation']['result']}: {async_part}; {thread_part}. "
            f"{chain_steps} dependent steps of {step_ms} ms took {chain_ms['in_order']} ms awaited in order and "
            f"{chain_ms['gathered']} ms gathered (their waits add up to {waits_ms} ms), while "
            f"{chain_steps} independent steps gathered took {chain_ms['independent_gathered']} ms.")
    return {
        "text": text,
        "total_ms": total_ms,
        "spread_ms": spread_ms,
        "cores_busy": cores_busy,
        "overhead_per_await_us": overhead_per_await_us,
        "result": measured["computation"]["result"],
        "chain_ms": chain_ms,
        "chain_in_order_ms": chain_ms["in_order"],
        "chain_gathered_ms": chain_ms["gathered"],
        "independent_gathered_ms": chain_ms["independent_gathered"],
        "chain_waits_ms": waits_ms,
        "chain_result": chain["result"],
        "steps": steps,
        "repeats": REPEATS,
    }


# "Edit and run" opens this program: the idea above in a few lines of standard-library Python that a
# reader can change and run (the sandbox has no network and no database: timers, threads, processes).
starting_program = '''\
import asyncio
import time


def step(x):
    return (x * 2 + 1) % 1000


async def async_step(x):
    return (x * 2 + 1) % 1000


def chain(n):
    x = 0
    for _ in range(n):
        x = step(x)
    return x


async def async_chain(n):
    x = 0
    for _ in range(n):
        x = await async_step(x)
    return x


N = 20_000
started = time.perf_counter()
chain(N)
plain_ms = (time.perf_counter() - started) * 1000
started = time.perf_counter()
asyncio.run(async_chain(N))
awaited_ms = (time.perf_counter() - started) * 1000
print(f"{N} plain calls: {plain_ms:.1f} ms; the same work awaited: {awaited_ms:.1f} ms")
print("Nothing here waits, so async has nothing to overlap: it only adds the cost of each await.")
'''
