"""A race on one thread: read, await, write.

`tasks` asyncio tasks share one counter, all on the same thread. Each adds 1
to it `increments` times by reading it, awaiting something (as code awaits a
cache or a payment service between checking and acting), then writing back
what it read plus one. In `unsafe` mode the other tasks run during that await
and read the same old value, so their writes overwrite each other; in `locked`
mode an `asyncio.Lock` spans read, await and write; in `no-await` mode the
task reads and writes with no await in between and awaits only afterwards, so
the tasks still take turns at every increment, but never inside one. A reader
should see the unsafe total come up short although nothing ran in parallel,
and the locked and no-await totals land exactly on the number of increments:
on one thread, other tasks can only run where a task awaits.
"""
import asyncio

from demos.params import ChoiceParam, IntParam, ParamError

slug = "await-race"
title = "A race condition across an await"
concept = ("One thread is enough for a race: tasks that read, await, then write a shared value lose updates "
           "unless a lock spans the await.")
placement = "loop"  # only awaits, bounded work: safe on the web loop
time_limit_s = 30.0
lanes = "task"
headline = ("lost", "final", "expected")
summary_fields = {
    "expected": ("Increments performed", ""), "final": ("Counter at the end", ""), "lost": ("Increments lost", ""),
    "tasks": ("Tasks", ""), "task_switches": ("Turns between writers", ""),
}
lane_states = frozenset({"running", "waiting", "lock-wait", "done"})
waits = "a timer (asyncio.sleep) standing in for I/O"
params = (
    ChoiceParam("mode", "unsafe", ("unsafe", "locked", "no-await"), label="Mode",
                help="unsafe: read, await, write; locked: the same inside an asyncio.Lock; "
                     "no-await: read and write, then await."),
    IntParam("tasks", 10, 1, 200, label="Tasks", help="How many asyncio tasks share the counter."),
    IntParam("increments", 20, 1, 500, label="Increments per task", help="How many times each task adds 1."),
    IntParam("await_ms", 2, 0, 20, label="Await (ms)",
             help="How long each task awaits between its read and its write; 0 is asyncio.sleep(0)."),
)
# Small enough for the test suite's run over every demo.
smoke_params = {"tasks": 3, "increments": 3}

MAX_INCREMENTS = 20_000
MAX_LANE_EVENTS = 6_000  # beyond this many increments, lanes show only start and end
MAX_LOGGED_OVERWRITES = 5
CHUNK = 50  # tasks created between two yields to the loop


def check_params(values):
    """Reject runs too large to show, or that would outlast the time limit."""
    total = values["tasks"] * values["increments"]
    if total > MAX_INCREMENTS:
        raise ParamError(f"{total} increments in all is too many; keep tasks × increments at or below {MAX_INCREMENTS}")
    if values["await_ms"] and values["mode"] == "locked" and total * values["await_ms"] > 10_000:
        raise ParamError("locked mode takes turns, so these values would outlast the time limit; shorten the await")


def _count(number: int, noun: str, nouns: str | None = None) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {nouns or noun + 's'}"


async def run(params, emit):
    """Let the tasks increment the shared counter; return how many increments survived."""
    locked = params["mode"] == "locked"
    await_between = params["mode"] != "no-await"
    task_count, increments = params["tasks"], params["increments"]
    pause_s = params["await_ms"] / 1000
    detailed = task_count * increments <= MAX_LANE_EVENTS // 3
    counter_step = max(1, (task_count * increments) // 200)
    lock = asyncio.Lock()
    counter = 0
    performed = 0
    overwrites_logged = 0
    last_writer = None
    task_switches = 0  # increments written by a different task than the one before: how often they took turns
    emit("lanes", count=task_count)
    emit("counter", name="counter", value=0)

    async def add_one(lane: int) -> None:
        nonlocal counter, performed, overwrites_logged, last_writer, task_switches
        if detailed:
            emit("state", lane=lane, state="running", label="read")
        seen = counter
        if await_between:
            if detailed:
                emit("state", lane=lane, state="waiting", label=f"read {seen}, awaiting")
            await asyncio.sleep(pause_s)  # the gap: other tasks run here
        if counter != seen and overwrites_logged < MAX_LOGGED_OVERWRITES:
            overwrites_logged += 1
            emit("log", text=f"task {lane + 1} read {seen}, then wrote {seen + 1} over {counter}: "
                             f"{counter - seen} lost")
        counter = seen + 1
        performed += 1
        if last_writer is not None and last_writer != lane:
            task_switches += 1
        last_writer = lane
        if performed % counter_step == 0:
            emit("counter", name="counter", value=counter)
        if not await_between:
            if detailed:
                emit("state", lane=lane, state="waiting", label=f"wrote {counter}, awaiting")
            await asyncio.sleep(pause_s)  # the same pause, after the write: other tasks run here instead

    async def worker(lane: int) -> None:
        for _ in range(increments):
            if locked:
                # Even a free-looking lock may make the task wait: a release hands it to the oldest waiter first.
                if detailed:
                    emit("state", lane=lane, state="lock-wait", label="waiting for the asyncio.Lock")
                async with lock:
                    await add_one(lane)
            else:
                await add_one(lane)
        emit("state", lane=lane, state="done")

    async with asyncio.TaskGroup() as group:
        for first in range(0, task_count, CHUNK):
            for lane in range(first, min(first + CHUNK, task_count)):
                group.create_task(worker(lane))
            await asyncio.sleep(0)  # let the site's loop breathe between chunks
    emit("counter", name="counter", value=counter)

    lost = performed - counter
    if lost:
        text = (f"{_count(task_count, 'task')} on one thread performed {_count(performed, 'increment')} "
                f"but the counter reads {counter}: "
                f"{lost} updates ({lost / performed:.0%}) were lost to writes based on stale reads.")
    else:
        how = {"locked": " behind an asyncio.Lock",
               "no-await": " with no await between each read and its write"}.get(params["mode"], "")
        text = (f"{_count(task_count, 'task')} performed {_count(performed, 'increment')}{how} "
                f"and the counter reads {counter}: no update was lost.")
        if params["mode"] == "no-await" and task_switches:
            text += (f" The tasks still took turns ({_count(task_switches, 'switch', 'switches')} between writers), "
                     f"but only at their awaits, never between a read and its write.")
    return {"text": text, "expected": performed, "final": counter, "lost": lost, "tasks": task_count,
            "task_switches": task_switches}


# "Edit and run" opens this program: the idea above in a few lines of standard-library Python that a
# reader can change and run (the sandbox has no network and no database: timers, threads, processes).
starting_program = '''\
import asyncio

counter = 0


async def add_one():
    global counter
    seen = counter              # read
    await asyncio.sleep(0.01)   # the other tasks run here
    counter = seen + 1          # write: overwrites what they wrote meanwhile


async def main():
    await asyncio.gather(*(add_one() for _ in range(5)))
    print(f"5 increments, counter = {counter}")


asyncio.run(main())
# Try: share one asyncio.Lock and hold it from the read to the write.
'''
