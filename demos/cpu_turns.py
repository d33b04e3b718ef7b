"""Turns for CPU-bound runs: two runs of one reader that burn CPU never share the cores.

A demo that declares `burns_cpu = True` measures how fast computing goes. Two
such runs started together (compare mode's "Run both") would compete for the
same cores, and each would report the other's load as its own result. So a
socket's CPU-bound runs take turns: the second is accepted at once (the reader
can stop it), holds its place, and begins only when the first has ended. Its
timeline counts from its acceptance, so on the widget's shared time axis it
starts where the first one stopped, after a note saying how long it waited.

Runs of different readers are not ordered here: the site-wide caps and the
worker pool bound those, and each run's summary records the host's load and
its cores (`host_conditions`) so a busy machine is visible rather than hidden.
The helpers at the bottom are what CPU-bound demos use to word a speedup
honestly: beside `cores_busy`, and called noise when the machine could not
have shown the claim.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol

logger = logging.getLogger("demos.cpu_turns")


class TurnTaker(Protocol):
    """What a run must offer to wait for its turn (demos.supervisor.SupervisedRun does)."""

    run_id: str
    queued_since: float | None

    @property
    def ended(self) -> bool: ...

    async def wait(self) -> None: ...


# Per reader (one socket), the turn of the CPU-bound run it started last: set once that run's turn is over.
_last_turn: dict[str, asyncio.Event] = {}
# Waiting and watching are tasks of their own, kept here so they are not collected mid-wait.
_tasks: set[asyncio.Task[None]] = set()


def burns_cpu(demo: object) -> bool:
    """Whether the demo declared that its runs burn CPU."""
    return bool(getattr(demo, "burns_cpu", False))


async def begin_in_turn(run: TurnTaker, *, reader: str, begin: Callable[[], Awaitable[None]]) -> None:
    """Begin `run` now, or once the turn of the reader's previous CPU-bound run is over.

    A run whose predecessor's turn is over begins before this returns, so a
    refusal from `begin` reaches the caller as before. A queued run begins in
    a task of its own, which gives up quietly if the run was stopped while it
    waited; the reader's socket is free meanwhile (to cancel either run). A
    run's turn is over when it has ended, and, for one stopped while it
    waited, when its own predecessor's turn is over: a third run never
    overtakes the first because the second was stopped.
    """
    previous = _last_turn.get(reader)
    turn = asyncio.Event()
    _last_turn[reader] = turn
    if previous is None or previous.is_set():
        try:
            await begin()
        except BaseException:
            _end_turn(turn, reader=reader)
            raise
        _start(_end_turn_when_ended(run, turn, reader=reader))
        return
    run.queued_since = time.time()
    _start(_begin_after(previous, run, turn, reader=reader, begin=begin))


def _start(coroutine: Coroutine[Any, Any, None]) -> None:
    task = asyncio.create_task(coroutine)
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _begin_after(previous: asyncio.Event, run: TurnTaker, turn: asyncio.Event, *, reader: str,
                       begin: Callable[[], Awaitable[None]]) -> None:
    try:
        await previous.wait()
        if run.ended:  # stopped while it waited: nothing to begin
            return
        try:
            await begin()
        except Exception:  # begin has ended the run and told the reader (a refusal, an unreachable queue)
            logger.info("queued run %s could not begin", run.run_id, exc_info=True)
            return
        await run.wait()
    finally:
        _end_turn(turn, reader=reader)


async def _end_turn_when_ended(run: TurnTaker, turn: asyncio.Event, *, reader: str) -> None:
    try:
        await run.wait()
    finally:
        _end_turn(turn, reader=reader)


def _end_turn(turn: asyncio.Event, *, reader: str) -> None:
    turn.set()
    if _last_turn.get(reader) is turn:
        del _last_turn[reader]


def queued_note(waited_ms: float) -> str:
    """The log line a queued run opens with."""
    return (f"Waited {waited_ms:,.0f} ms for your other CPU-bound run to finish: runs that measure computing "
            "take turns, so neither counts the other's work as its own.")


# --- wording a CPU-bound result honestly --------------------------------------------------------

def host_conditions() -> dict[str, Any]:
    """The host's 1-minute load average and the cores this process may use, read now (before the timed work)."""
    return {"load_before": round(os.getloadavg()[0], 2), "cores": len(os.sched_getaffinity(0))}


def machine_was_busy(conditions: dict[str, Any]) -> bool:
    """True when more work was waiting for the CPU than there were cores, just before the run."""
    return conditions["load_before"] > conditions["cores"]


# How much more CPU time the same work may take on the workers than on the baseline before it is called noise.
CPU_INFLATION_LIMIT = 1.25


def speedup_noise(*, speedup: float, cores_busy: float, baseline_cores_busy: float, expected_speedup: float,
                  conditions: dict[str, Any], cpu_inflation: float | None = None,
                  round_speedups: list[float] | None = None) -> str | None:
    """Why a measured speedup of CPU-bound work is noise rather than a finding, or None when it can stand.

    `expected_speedup` is what the claim predicts (the usable cores for work
    that runs in parallel, 1 for work that takes turns on one core);
    `cpu_inflation` is the workers' CPU seconds over the baseline's for the
    same pieces (None where not measured); `round_speedups` the speedups of
    the run's own rounds, when it took several.

    - a speedup above the usable cores cannot come from those cores;
    - a result that contradicts the claim (under 3/4 of the expected speedup,
      or over 5/4 of it) while the machine was busy (load above the cores
      before the run) says more about the machine than about the method;
      so does one from a run with a round above what the work can gain (the
      expected speedup, or the cores the workers kept busy if more): no round
      can be, so the speed of the cores changed within the run
      (1.41x, the median of rounds from 1.17x to 3.06x on 2 cores; threads
      under the GIL at 1.38x, with a round at 1.70x; both in the suite on
      2026-12-01);
    - so does any result whose work was starved (`cores_busy` under half of
      what the claim predicts, or the one-worker baseline under 0.8 of a
      core: one CPU-bound worker on an idle machine keeps nearly a whole core),
      even one that agrees with the claim. A speedup is close to the parallel
      run's busy cores over the baseline's, so a starved baseline inflates it
      (2.01x from 1.01 busy cores came from a baseline with half a core).
    """
    cores = conditions["cores"]
    # Two per cent for the clock's own noise; past that, the cores cannot have given it.
    if speedup > cores * 1.02:
        return (f"a {speedup:.2f}× speedup is more than {cores} cores can give, so it is noise in the timing, "
                "not a finding")
    # The same pieces of work cost the same CPU time wherever they run; when they cost far more side by side,
    # each core ran slower (other tenants of the host, its frequency, shared caches) and the timing shows that.
    if cpu_inflation is not None and cpu_inflation > CPU_INFLATION_LIMIT:
        return (f"the same work took {cpu_inflation:.2f}× the CPU time when the workers ran side by side, so the "
                "cores were slowed by something outside this run: noise from the machine, not a finding")
    contradicts = speedup < 0.75 * expected_speedup or speedup > 1.25 * expected_speedup
    # What a round can gain: the usable cores for parallel work, 1 for work that takes turns, unless the run's
    # own CPU time shows its workers kept more cores busy (threads that did run at once are a finding, not noise).
    most_gained = max(expected_speedup, cores_busy)
    impossible_rounds = [ratio for ratio in round_speedups or [] if ratio > most_gained * 1.02]
    if contradicts and machine_was_busy(conditions):
        why = f"the load average was {conditions['load_before']:.2f} on {cores} cores before the run"
    elif contradicts and impossible_rounds:
        why = (f"a round of this run came out at {max(impossible_rounds):.2f}×, more than this work can gain here "
               f"(at most {most_gained:.2f}×), so the speed of the cores changed while it ran")
    elif cores_busy < 0.5 * expected_speedup:
        why = f"the workers kept only {cores_busy:.2f} cores busy where {expected_speedup:g} were expected"
    elif baseline_cores_busy < 0.8:
        why = f"the one-worker baseline had only {baseline_cores_busy:.2f} of a core"
    else:
        return None
    return f"{why}, so this result is noise from other work on the machine, not a finding"
