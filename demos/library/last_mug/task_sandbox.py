"""Step mode's sandbox for the last mug: a real asyncio event loop whose next ready task is the reader's choice.

    python task_sandbox.py --session ID --scenario no-lock | with-lock

Two real asyncio.Task objects, buyers T1 and T2, run `buy` (or
`buy_with_lock`) below against one shop that has a single mug left. The loop
is asyncio's own selector loop; the only thing it does differently is hold
back the buyers' wake-ups. Whenever a buyer task asks the loop to run its
next step (`call_soon` with one of the task's own callbacks: its first step,
the step after a bare `await asyncio.sleep(0)`, or the wake-up when the
asyncio.Lock it waits for is handed to it), the callback is parked instead
of queued. A reader's step releases the parked callbacks of the task the
reader picked, and the loop runs that task until it suspends again (its
next wake-up is parked once more), waits for the lock, or returns. The other
task stays exactly where it was. Nothing about the loop is re-implemented:
scheduling, futures, the lock and the tasks are asyncio's.

A task whose step reached `async with lock:` while the other buyer holds the
lock waits for it (`lock-wait`); its step is answered "blocked", as a
statement waiting for a row lock is in the database step modes. When the
holder releases the lock, asyncio hands the lock to the waiter and the
waiter's wake-up is parked; the reader already sent that task on, so the
sandbox resumes it at once and answers its step.

The lines each step ran are seen by a trace function on the buyer's code
object only (sys.settrace), and each task's current line comes from its
coroutine's own frame. The level's goal (both buyers got the mug: the stock
went below zero) is judged here, from the shop's real stock after each step,
and said once: {"goal": "reached" | "missed", "evidence": {...}}.

JSON lines on stdin: {"tx": "T1", "action": "start" | "resume"} or {"quit": true}.
JSON lines on stdout: {"ready": true, "counter": stock} once, then per step
{"tx", "action", "sql" (the lines it ran), "status": "blocked" | "done",
"result", "counter_committed" (the stock)} or {"error": code, "message", "tx",
"action"} for a step out of order. End of stdin means quit. It imports only
the standard library, so nothing of the site loads into it.
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import inspect
import json
import signal
import sys
import threading
from collections.abc import Callable
from types import CodeType, FrameType
from typing import Any

PR_SET_PDEATHSIG = 1
TASKS = ("T1", "T2")
STOCK = 1
# Each task's steps in order: `start` runs it from its first line to its first suspension; `resume` runs it
# from the await to its end. A buyer that finds the shop sold out returns during `start`.
STEPS = ("start", "resume")


class Shop:
    def __init__(self, stock: int) -> None:
        self.stock = stock


async def buy(shop: Shop) -> str:
    if shop.stock > 0:
        await asyncio.sleep(0)  # the payment
        shop.stock -= 1
        return "got the mug"
    return "sold out"


async def buy_with_lock(shop: Shop, lock: asyncio.Lock) -> str:
    async with lock:
        if shop.stock > 0:
            await asyncio.sleep(0)  # the payment
            shop.stock -= 1
            return "got the mug"
        return "sold out"


BUYERS: dict[str, Callable[..., Any]] = {"no-lock": buy, "with-lock": buy_with_lock}
ACTIONS: dict[str, dict[str, tuple[str, ...]]] = {scenario: dict.fromkeys(TASKS, STEPS) for scenario in BUYERS}


def buyer_source(scenario: str) -> list[str]:
    """The buyer's source, line by line, as the reader sees it (line 1 is its `async def`)."""
    lines, _ = inspect.getsourcelines(BUYERS[scenario])
    return [line.rstrip("\n") for line in lines]


def _check_line(scenario: str) -> int:
    """The line (counted from the `async def`) of the stock check."""
    return next(number for number, line in enumerate(buyer_source(scenario), 1) if "if shop.stock > 0" in line)


class ReaderScheduledLoop(asyncio.SelectorEventLoop):
    """asyncio's selector loop, except that the buyers' own callbacks wait until the reader releases them."""

    def __init__(self) -> None:
        super().__init__()
        self.parked: dict[int, list[tuple[Callable[..., Any], tuple[Any, ...], Any]]] = {}
        self.running_released = 0
        self._settled: asyncio.Future[None] | None = None
        self._adopting = False

    def create_held_task(self, coroutine: Any, *, name: str) -> asyncio.Task:
        """A real task of `coroutine` whose every step, its first included, waits for `release`."""
        self._adopting = True  # the task's first step is queued inside create_task, before its id is known
        try:
            task = self.create_task(coroutine, name=name)
        finally:
            self._adopting = False
        self.parked.setdefault(id(task), [])
        return task

    def call_soon(self, callback, *args, context=None):  # type: ignore[override]
        # A task's step and wake-up callbacks are bound to the task (`__self__`); that is how it is recognised.
        owner = getattr(callback, "__self__", None)
        held = None
        if isinstance(owner, asyncio.Task):
            held = self.parked.setdefault(id(owner), []) if self._adopting else self.parked.get(id(owner))
        if held is not None:
            held.append((callback, args, context))
            return asyncio.Handle(callback, args, self, context)  # never run: the released copy runs instead
        return super().call_soon(callback, *args, context=context)

    def ready(self, task: asyncio.Task) -> bool:
        """Whether the task has a step waiting to run: it is ready, and only the reader can let it go."""
        return bool(self.parked.get(id(task)))

    def release(self, task: asyncio.Task) -> None:
        """Queue the task's parked callbacks, really this time."""
        callbacks, self.parked[id(task)] = self.parked[id(task)], []
        for callback, args, context in callbacks:
            self.running_released += 1
            super().call_soon(self._run_released, callback, args, context=context)

    def _run_released(self, callback: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            callback(*args)
        finally:
            self.running_released -= 1
            if not self.running_released and self._settled is not None and not self._settled.done():
                self._settled.set_result(None)

    async def until_settled(self) -> None:
        """Wait until every released callback has run: the released task has suspended again, or returned."""
        if self.running_released:
            self._settled = self.create_future()
            await self._settled  # the awaiting task is not a held one, so its wake-up is queued as usual


class Session:
    """The shop, the two buyer tasks and what the reader has asked of them."""

    def __init__(self, loop: ReaderScheduledLoop, scenario: str) -> None:
        self.loop = loop
        self.scenario = scenario
        self.source = buyer_source(scenario)
        self.check_line = _check_line(scenario)
        self.shop = Shop(STOCK)
        self.lock = asyncio.Lock()
        coroutine = BUYERS[scenario]
        self.code: CodeType = coroutine.__code__
        self.first_line = self.code.co_firstlineno
        self.tasks: dict[str, asyncio.Task] = {}
        self.frames: dict[FrameType, str] = {}  # each buyer's coroutine frame, to its task's name
        for name in TASKS:
            arguments = (self.shop, self.lock) if scenario == "with-lock" else (self.shop,)
            # Its first step is parked too: the task exists (ready) but starts only when the reader says.
            task = loop.create_held_task(coroutine(*arguments), name=name)
            self.tasks[name] = task
            self.frames[task.get_coro().cr_frame] = name  # type: ignore[union-attr]
        self.next_step = dict.fromkeys(TASKS, 0)
        self.pending: dict[str, str] = {}  # a task's step that is still out (it waits for the lock)
        self.step_start: dict[str, int] = {}  # where in lines_run the step that is out began
        self.lines_run: dict[str, list[int]] = {name: [] for name in TASKS}
        self.seen: dict[str, int] = {}
        self.started: set[str] = set()
        self.lock_waited: list[str] = []
        self.goal_said = False

    # --- watching the buyer's lines -------------------------------------------------------------------

    def trace(self, frame: FrameType, event: str, _arg: Any):
        if frame.f_code is not self.code or frame not in self.frames:
            return None
        name = self.frames[frame]

        def local(frame: FrameType, event: str, _arg: Any):
            if event == "line":
                line = frame.f_lineno - self.first_line + 1
                self.lines_run[name].append(line)
                if line == self.check_line:
                    self.seen[name] = self.shop.stock  # what the check is about to read
            return local

        return local

    # --- state ------------------------------------------------------------------------------------

    def current_line(self, name: str) -> int | None:
        frame = self.tasks[name].get_coro().cr_frame  # type: ignore[union-attr]
        if frame is None:
            return None
        return frame.f_lineno - self.first_line + 1

    def waits_for_lock(self, name: str) -> bool:
        task = self.tasks[name]
        waiter = getattr(task, "_fut_waiter", None)
        return waiter is not None and waiter in (getattr(self.lock, "_waiters", None) or ())

    def state_of(self, name: str) -> dict[str, Any]:
        """One task as the reader sees it: its lane state, its current line and that line's code."""
        task = self.tasks[name]
        if task.done():
            # Where it returned (leaving `async with` afterwards goes back to that line, which is not news).
            returns = [line for line in self.lines_run[name] if self.source[line - 1].strip().startswith("return")]
            line = returns[-1] if returns else None
            state: dict[str, Any] = {"state": "done", "outcome": task.result()}
        else:
            line = self.current_line(name)
            if name not in self.started:
                state = {"state": "queued"}
                line = 1
            elif self.loop.ready(task):
                state = {"state": "waiting"}
            elif self.waits_for_lock(name):
                state = {"state": "lock-wait", "holder": self.other(name)}
            else:
                state = {"state": "waiting"}
        state["line"] = line
        state["code"] = self.code_at(line) if line else ""
        return state

    def code_at(self, line: int) -> str:
        """Line `line` of the buyer's source, without its comment."""
        return self.source[line - 1].split("  #", 1)[0].strip()

    def other(self, name: str) -> str:
        return next(other for other in TASKS if other != name)

    def finished(self, name: str) -> bool:
        return self.tasks[name].done()

    # --- steps ------------------------------------------------------------------------------------

    async def command(self, tx: str, action: str) -> None:
        refuse = {"tx": tx, "action": action}
        if tx not in self.tasks:
            say({"error": "bad_message", "message": "`tx` must be T1 or T2.", **refuse})
            return
        if tx in self.pending:
            say({"error": "busy", "message": f"{tx} is still waiting for the lock; it takes no other step until it has it.",
                 **refuse})
            return
        if self.finished(tx):
            say({"error": "invalid_step", "message": f"{tx} has already returned; press Reset to start again.", **refuse})
            return
        expected = STEPS[self.next_step[tx]]
        if action != expected:
            message = (f"{action!r} is not a step of {tx}; its steps are {', '.join(STEPS)}." if action not in STEPS
                       else f"{tx} cannot {action} now: its next step is {expected}.")
            say({"error": "invalid_step", "message": message, **refuse})
            return
        self.pending[tx] = action
        self.step_start[tx] = len(self.lines_run[tx])
        await self.advance(tx)

    async def advance(self, tx: str) -> None:
        """Let the loop run `tx` until it suspends again; answer its step; then any task that got the lock."""
        task = self.tasks[tx]
        self.started.add(tx)
        self.loop.release(task)
        await self.loop.until_settled()
        ran = self.lines_run[tx][self.step_start[tx]:]
        action = self.pending[tx]
        if not task.done() and not self.loop.ready(task) and self.waits_for_lock(tx):
            if tx not in self.lock_waited:
                self.lock_waited.append(tx)
            self.report(tx, action, ran, status="blocked")
            return  # still out: it goes on when it gets the lock
        self.next_step[tx] = len(STEPS) if task.done() else self.next_step[tx] + 1
        del self.pending[tx]
        self.report(tx, action, ran, status="done")
        self.judge_goal()
        for other, waiting in list(self.pending.items()):
            if waiting and self.loop.ready(self.tasks[other]):
                await self.advance(other)  # the lock was handed to it, and the reader had already sent it on

    def report(self, tx: str, action: str, ran: list[int], *, status: str) -> None:
        state = self.state_of(tx)
        result: dict[str, Any] = {
            "stock": self.shop.stock, "state": state["state"], "line": state["line"], "code": state["code"],
            "finished": self.finished(tx), "tasks": {name: self.state_of(name) for name in TASKS},
        }
        if tx in self.seen:
            result["seen"] = self.seen[tx]
        if "outcome" in state:
            result["outcome"] = state["outcome"]
        if status == "blocked":
            result["waiting_for"] = [self.other(tx)]
        say({"tx": tx, "action": action, "sql": self.describe(ran),
             "status": status, "result": result, "counter_committed": self.shop.stock})

    def describe(self, ran: list[int]) -> str:
        """The lines a step ran, numbered as in the buyer's source; leaving `async with` says what it does."""
        parts = []
        previous = 0
        for line in _collapse(ran):
            code = self.code_at(line)
            if line < previous and code.startswith("async with"):
                code += " (leaving the block releases the lock)"
            parts.append(f"{line}: {code}")
            previous = line
        return " → ".join(parts)

    def judge_goal(self) -> None:
        """Oversold: the stock, read off the shop itself, went below zero. Missed once both buyers returned without it."""
        if self.goal_said:
            return
        outcomes = {name: task.result() for name, task in self.tasks.items() if task.done()}
        got = sorted(name for name, outcome in outcomes.items() if outcome == "got the mug")
        evidence = {"start": STOCK, "stock": self.shop.stock, "got": len(got),
                    "buyers": " and ".join(got) or "nobody"}
        if self.shop.stock < 0:
            self.goal_said = True
            say({"goal": "reached", "evidence": evidence})
        elif len(outcomes) == len(TASKS):
            self.goal_said = True
            sold_out = [name for name, outcome in outcomes.items() if outcome == "sold out"]
            evidence |= {"sold_out": " and ".join(sold_out) or "nobody",
                         "lock_waited": " and ".join(self.lock_waited) or "nobody"}
            say({"goal": "missed", "evidence": evidence})


def _collapse(lines: list[int]) -> list[int]:
    """Lines run, with a line that repeats at once (a resumed await) kept once."""
    kept: list[int] = []
    for line in lines:
        if not kept or kept[-1] != line:
            kept.append(line)
    return kept


_output_lock = threading.Lock()


def say(message: dict) -> None:
    with _output_lock:
        sys.stdout.write(json.dumps(message) + "\n")
        sys.stdout.flush()


async def serve(loop: ReaderScheduledLoop, scenario: str) -> None:
    session = Session(loop, scenario)
    commands: asyncio.Queue[str | None] = asyncio.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(commands.put_nowait, line)
        loop.call_soon_threadsafe(commands.put_nowait, None)

    threading.Thread(target=read_stdin, name="stdin", daemon=True).start()
    sys.settrace(session.trace)  # from here on, every resumption of a buyer's frame reports its lines
    say({"ready": True, "counter": session.shop.stock})
    try:
        while (line := await commands.get()) is not None:
            try:
                command = json.loads(line)
            except ValueError:
                continue  # only the consumer writes here; a bad line is a bug there, not a reason to die
            if not isinstance(command, dict) or command.get("quit"):
                break
            await session.command(str(command.get("tx")), str(command.get("action")))
    finally:
        sys.settrace(None)
        await _end_tasks(loop, list(session.tasks.values()))


async def _end_tasks(loop: ReaderScheduledLoop, tasks: list[asyncio.Task]) -> None:
    """Cancel the buyers still suspended and let them unwind, so none is destroyed pending."""
    for task in tasks:
        task.cancel()
    while not all(task.done() for task in tasks):
        for task in tasks:
            loop.release(task)
        await asyncio.sleep(0)
    await asyncio.gather(*tasks, return_exceptions=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--session", required=True, help="The step session's id; only to find this process.")
    parser.add_argument("--scenario", required=True, choices=sorted(BUYERS))
    args = parser.parse_args()
    if sys.platform.startswith("linux"):
        # If the web server dies, take this process with it.
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    loop = ReaderScheduledLoop()
    try:
        loop.run_until_complete(serve(loop, args.scenario))
    finally:
        loop.close()


if __name__ == "__main__":
    main()
