"""Swallowed errors: which ways of starting tasks let a failure reach anyone.

A caller starts `tasks` asyncio tasks; `failing` of them raise ValueError
after a short wait (one every `stagger_ms`, or all at the same moment), the
rest finish later. The caller then either

- `fire-and-forget`: calls `asyncio.create_task` and returns at once, keeping
  no reference (or, with `keep_references`, a set it never looks at again);
- `gather`: awaits plain `asyncio.gather` and catches what it raises;
- `gather-return-exceptions`: awaits `gather(..., return_exceptions=True)` and
  counts the exceptions among the results;
- `taskgroup`: runs them in an `asyncio.TaskGroup` and catches the
  `ExceptionGroup` with `except*`.

Everything happens on a sandbox event loop made inside `run` (in a worker,
never the site's loop), because the demo installs its own exception handler
on that loop, lets tasks outlive their caller and runs the garbage collector.
Every "log line" in the summary is a call asyncio itself made to that handler
(the handler stands in for the default one, which would have written the same
message to the `asyncio` logger), not a message the demo made up.

What a reader should see, on CPython 3.11: fire-and-forget failures reach
nobody; the only trace is "Task exception was never retrieved", written when
the task object is freed, which is the moment it fails when nothing refers to
it, and not before the references are dropped when something does. Plain
gather hands the caller the first exception while the other tasks keep
running; gather's own done callback marks the later exceptions as retrieved,
so they vanish without even a log line. A TaskGroup waits for every task,
cancels the ones still running after the first failure and raises one
ExceptionGroup holding every exception that happened.
"""
import asyncio
import gc
import time

from demos.params import BoolParam, ChoiceParam, IntParam, ParamError

slug = "swallowed-errors"
title = "Errors nobody sees"
concept = ("A failed task reports to whoever awaits it: fire-and-forget and plain gather lose failures, "
           "a TaskGroup hands every one to its caller.")
placement = "worker"  # its own loop: it installs an exception handler, leaks tasks and collects garbage
time_limit_s = 20.0
lanes = "task"
headline = ("errors_raised", "errors_seen", "log_lines")
summary_fields = {
    "mode": ("How the caller waited", ""), "errors_raised": ("Exceptions raised", ""),
    "errors_seen": ("Exceptions the caller received", ""), "log_lines": ("Lines asyncio logged", ""),
    "log_lines_at_teardown": ("Lines logged only at teardown", ""), "log_delay_ms": ("Delay before the log line", "ms"),
    "siblings_cancelled": ("Sibling tasks cancelled", ""), "still_running_after_return": ("Tasks still running afterwards", ""),
}
waits = "a timer (asyncio.sleep) standing in for I/O"
lane_states = frozenset({"waiting", "failed", "done"})
MODES = ("fire-and-forget", "gather", "gather-return-exceptions", "taskgroup")
params = (
    ChoiceParam("mode", "fire-and-forget", MODES, label="How the caller runs the tasks",
                help="fire-and-forget: create_task and return; gather: plain asyncio.gather; "
                     "gather-return-exceptions: gather(return_exceptions=True); taskgroup: asyncio.TaskGroup."),
    IntParam("tasks", 6, 2, 20, label="Tasks", help="How many tasks the caller starts."),
    IntParam("failing", 3, 1, 20, label="Failing tasks", help="How many of them raise ValueError."),
    IntParam("stagger_ms", 0, 0, 200, label="Gap between failures (ms)",
             help="0: every failing task raises at the same moment; otherwise one fails every stagger_ms."),
    BoolParam("keep_references", False, label="Keep the tasks in a set",
              help="fire-and-forget only: hold every task in a set that is never awaited or emptied."),
)
# Small enough for the test suite's run over every demo.
smoke_params = {"tasks": 3, "failing": 1}

FIRST_FAILURE_S = 0.040
FIRST_SUCCESS_S = 0.150  # the tasks that succeed outlast the failures, so there are siblings to cancel
SUCCESS_EVERY_S = 0.020
SETTLE_S = 0.050  # after the last planned finish, how long stragglers get before teardown
FLUSH_EVERY_S = 0.020
NEVER_RETRIEVED = "Task exception was never retrieved"


def check_params(values):
    """Failing tasks are some of the tasks; keeping references only changes fire-and-forget."""
    if values["failing"] > values["tasks"]:
        raise ParamError(f"failing ({values['failing']}) cannot exceed tasks ({values['tasks']})")
    if values["keep_references"] and values["mode"] != "fire-and-forget":
        raise ParamError("keep_references applies to fire-and-forget only: the other modes hold their tasks anyway")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


class _Sandbox:
    """The run's bookkeeping: what each task did, what asyncio logged, events waiting to be emitted.

    Task bodies and the exception handler only append here; `emit` (which may
    raise RunCancelled) is called from the supervising coroutine alone, so a
    stop signal never lands inside a task and becomes one more swallowed error.
    """

    def __init__(self, task_count: int, run_ms) -> None:
        self.run_ms = run_ms
        self.outcomes: dict[int, str] = {lane: "running" for lane in range(1, task_count + 1)}
        self.failed_at: list[float] = []
        self.cancelled_during_caller = 0
        self.caller_busy = True
        self.logged: list[tuple[float, str, str]] = []  # (perf_counter, message, exception)
        self.pending_events: list[tuple[str, dict]] = []

    def note(self, kind: str, **fields) -> None:
        self.pending_events.append((kind, {"t": self.run_ms(time.perf_counter()), **fields}))

    def exception_handler(self, loop, context) -> None:
        # Keeps text only: holding context["future"] would keep the task alive and change what is measured.
        error = context.get("exception")
        self.logged.append((time.perf_counter(), context.get("message", ""), repr(error) if error else ""))

    def flush(self, emit) -> None:
        events, self.pending_events = self.pending_events, []
        for kind, fields in events:
            emit(kind, **fields)

    def still_running(self) -> int:
        return sum(1 for outcome in self.outcomes.values() if outcome == "running")


async def _task_body(box: _Sandbox, lane: int, fails_after_s: float | None, succeeds_after_s: float) -> int:
    """One task: pretend I/O, then raise or return."""
    box.note("state", lane=lane, state="waiting")
    try:
        await asyncio.sleep(fails_after_s if fails_after_s is not None else succeeds_after_s)
    except asyncio.CancelledError:
        box.outcomes[lane] = "cancelled"
        if box.caller_busy:
            box.cancelled_during_caller += 1
        box.note("state", lane=lane, state="done")
        box.note("log", text=f"task {lane} was cancelled")
        raise
    if fails_after_s is not None:
        box.outcomes[lane] = "failed"
        box.failed_at.append(time.perf_counter())
        box.note("state", lane=lane, state="failed")
        raise ValueError(f"task {lane} failed")
    box.outcomes[lane] = "done"
    box.note("state", lane=lane, state="done")
    return lane


async def _caller(mode: str, box: _Sandbox, plans: list[tuple[int, float | None, float]],
                  kept: set) -> int:
    """The code under test: start the tasks as `mode` says; return how many errors it got to see."""
    def bodies():
        return [_task_body(box, lane, fails, succeeds) for lane, fails, succeeds in plans]

    if mode == "fire-and-forget":
        for body in bodies():
            task = asyncio.create_task(body)
            if kept is not None:
                kept.add(task)
            del task  # no reference survives in this frame either
        return 0
    if mode == "gather":
        try:
            await asyncio.gather(*bodies())
        except ValueError:
            return 1
        return 0
    if mode == "gather-return-exceptions":
        results = await asyncio.gather(*bodies(), return_exceptions=True)
        return sum(1 for result in results if isinstance(result, BaseException))
    seen = 0
    try:
        async with asyncio.TaskGroup() as group:
            for body in bodies():
                group.create_task(body)
    except* ValueError as failures:
        seen = len(failures.exceptions)
    return seen


async def _supervise(mode: str, box: _Sandbox, plans, kept, emit, settle_until: float) -> dict:
    """Run the caller, then watch the loop until the stragglers are done; emit as it goes."""
    box.note("state", lane=0, state="waiting", label=f"caller: {mode}")
    caller = asyncio.create_task(_caller(mode, box, plans, kept))
    while not caller.done():
        await asyncio.sleep(FLUSH_EVERY_S / 4)
        box.flush(emit)
        emit.check_cancelled()
    errors_seen = caller.result()
    box.caller_busy = False
    returned_at = time.perf_counter()
    still_running = box.still_running()
    box.note("state", lane=0, state="done")
    box.note("log", text=f"the caller returned having seen {_count(errors_seen, 'error')}; "
                         f"{_count(still_running, 'task')} still running")
    while box.still_running() and time.perf_counter() < settle_until:
        await asyncio.sleep(FLUSH_EVERY_S)
        box.flush(emit)
        emit.check_cancelled()
    for _ in range(3):  # a few more loop iterations: done callbacks and frees scheduled by the last steps
        await asyncio.sleep(0)
    box.flush(emit)
    return {"errors_seen": errors_seen, "returned_at": returned_at, "still_running": still_running}


def run(params, emit):
    """Run the caller on a fresh sandbox loop; return what failed, what was seen and what asyncio logged."""
    mode, task_count, failing = params["mode"], params["tasks"], params["failing"]
    stagger_s = params["stagger_ms"] / 1000
    plans = []
    for lane in range(1, task_count + 1):
        if lane <= failing:
            plans.append((lane, FIRST_FAILURE_S + (lane - 1) * stagger_s, 0.0))
        else:
            plans.append((lane, None, FIRST_SUCCESS_S + (lane - failing - 1) * SUCCESS_EVERY_S))
    longest_s = max(fails if fails is not None else succeeds for _, fails, succeeds in plans)

    labels = [f"caller ({mode})"]
    for lane, fails, succeeds in plans:
        labels.append(f"task {lane}: fails at {fails * 1000:.0f} ms" if fails is not None
                      else f"task {lane}: succeeds at {succeeds * 1000:.0f} ms")
    clock_origin = time.perf_counter()
    origin_ms = emit("lanes", count=task_count + 1, labels=labels)

    def run_ms(moment: float) -> float:
        return origin_ms + (moment - clock_origin) * 1000

    box = _Sandbox(task_count, run_ms)
    kept: set | None = set() if params["keep_references"] else None
    loop = asyncio.new_event_loop()
    loop.set_exception_handler(box.exception_handler)
    try:
        measured = loop.run_until_complete(
            _supervise(mode, box, plans, kept, emit, time.perf_counter() + longest_s + SETTLE_S))
        logged_before_teardown = len(box.logged)
        # Teardown: drop the set the caller kept, and collect anything that only the cyclic collector frees.
        if kept is not None:
            kept.clear()
        gc.collect()
    finally:
        leftovers = asyncio.all_tasks(loop)
        for task in leftovers:
            task.cancel()
        if leftovers:
            loop.run_until_complete(asyncio.gather(*leftovers, return_exceptions=True))
        del leftovers
        loop.close()
    for moment, message, error in box.logged:
        emit("log", t=run_ms(moment), text=f"asyncio logged: {message}: {error}" if error else f"asyncio logged: {message}")

    errors_raised = len(box.failed_at)
    errors_seen = measured["errors_seen"]
    log_lines = len(box.logged)
    at_teardown = log_lines - logged_before_teardown
    never_retrieved = sum(1 for _, message, _ in box.logged if message == NEVER_RETRIEVED)
    siblings_cancelled = box.cancelled_during_caller
    still_running = measured["still_running"]
    failures, lines = sorted(box.failed_at), sorted(moment for moment, _, _ in box.logged)
    if failures and len(lines) == len(failures):
        # Each line against the failure it follows: how long the failed task object lived on.
        log_delay_ms = round(max(line - failed for line, failed in zip(lines, failures, strict=True)) * 1000, 1)
    else:
        log_delay_ms = None
    raised_after_return = sum(1 for moment in failures if moment > measured["returned_at"])
    cancelled_before_failing = sum(1 for lane in range(1, failing + 1) if box.outcomes[lane] == "cancelled")

    raised = f"{_count(errors_raised, 'task')} of {task_count} raised"
    if mode == "fire-and-forget":
        if kept is not None:
            where = (f"asyncio logged nothing while the set held the tasks; {_count(at_teardown, 'line')} "
                     f"'{NEVER_RETRIEVED}' appeared only when the demo emptied the set at teardown")
        elif never_retrieved:
            # The delay is only known when every failure got its line; otherwise leave the figure out.
            within = f" within {max(log_delay_ms, 0.1)} ms of its failure" if log_delay_ms is not None else ""
            where = (f"the only trace is {_count(never_retrieved, 'line')} '{NEVER_RETRIEVED}', each logged"
                     f"{within}, when the unreferenced task object was freed")
        else:
            where = "asyncio logged nothing about them"
        text = (f"{raised} after the caller had returned ({still_running} still running); "
                f"the caller saw {errors_seen} of them and {where}.")
    elif mode == "gather":
        later = f", {raised_after_return} of them after the caller had moved on" if raised_after_return else ""
        text = (f"{raised}{later}; plain gather raised the first to the caller and marked the other "
                f"{errors_raised - errors_seen} retrieved, so asyncio logged {_count(log_lines, 'line')}; "
                f"{_count(still_running, 'task')} were still running when the caller got its exception.")
    elif mode == "gather-return-exceptions":
        text = (f"{raised}; gather(return_exceptions=True) waited for all {task_count} and handed back "
                f"{errors_seen} exceptions as results, which reach anyone only because this caller checks each result.")
    else:
        stopped = (f" ({cancelled_before_failing} of them before they could fail)"
                   if cancelled_before_failing else "")
        if errors_seen != errors_raised:
            every = f"{errors_seen} of them"
        else:
            every = "that error" if errors_seen == 1 else f"all {errors_seen} errors"
        text = (f"{raised}; the TaskGroup cancelled {_count(siblings_cancelled, 'sibling')}{stopped}, "
                f"waited for them, and raised one ExceptionGroup holding {every}; {still_running} left running.")
    return {
        "text": text,
        "mode": mode,
        "errors_raised": errors_raised,
        "errors_seen": errors_seen,
        "log_lines": log_lines,
        "log_lines_at_teardown": at_teardown,
        "log_delay_ms": log_delay_ms,
        "siblings_cancelled": siblings_cancelled,
        "still_running_after_return": still_running,
    }


# "Edit and run" opens this program: the idea above in a few lines of standard-library Python that a
# reader can change and run (the sandbox has no network and no database: timers, threads, processes).
starting_program = '''\
import asyncio


async def fails():
    await asyncio.sleep(0.05)
    raise ValueError("the job failed")


async def works():
    await asyncio.sleep(0.1)
    return "ok"


async def main():
    forgotten = asyncio.create_task(fails())  # fire and forget: nobody awaits it
    await asyncio.sleep(0.2)
    print("main carried on; did anyone hear about the failure?")

    results = await asyncio.gather(fails(), works(), return_exceptions=True)
    print("gather(return_exceptions=True):", results)

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(fails())
            group.create_task(works())
    except* ValueError as failed:
        print("TaskGroup raised:", failed.exceptions)


asyncio.run(main())
'''
