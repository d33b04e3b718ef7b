"""What a demo is, what it receives, and the message shapes of the public protocol.

A demo is a package (or, when small, a module) under `demos/library/`. The
engine reads only what it declares (docs/architecture.md, "What a demo may
declare"):

    slug: str                 # public name, used in URLs and lesson blocks
    title: str                # shown above the widget
    concept: str              # the idea it proves, in one line
    placement: "loop" | "worker"
    params: tuple[Param, ...] # declared parameters (demos.params)
    time_limit_s: float       # hard limit for one run
    lanes: str                # what one timeline lane is ("request", "client", ...)
    run(params, emit) -> dict # the summary; async def for loop demos, def for worker demos

Library demos also declare `waits`, a short phrase saying what their waits
really are ("PostgreSQL", "a timer standing in for I/O"); the widget shows it.
Optionally `check_params(values)` (cross-parameter rules, raising
ParamError), `smoke_params` (a small preset the test suite runs),
`lane_states` (the lane states its timeline uses), `summary_fields` (what each
summary key is called, and its unit), `headline` (the at most three summary
keys shown first), `queues` (Celery queues of its own jobs), `step_mode`
(a consumer that lets the reader step it by hand) and `burns_cpu` (True when
its runs measure computing: one reader's such runs take turns,
demos/cpu_turns.py, and its summary reports `cores_busy`, the host's load
and cores).

`emit(kind, **fields)` records one event; it stamps `t` (ms since the run
started) unless given. Summaries are plain JSON dicts computed from measured
times, with a `text` entry stating the claim in words.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NotRequired, Protocol, TypedDict, runtime_checkable

from coursesite.processes import JobQueueSpec as JobQueue

Placement = Literal["loop", "worker"]
RunStatus = Literal["succeeded", "failed", "cancelled", "timed_out"]
# Every `code` an `error` message may carry, on either websocket route (the step routes add the last two).
ErrorCode = Literal["bad_message", "unknown_demo", "invalid_params", "busy", "unavailable", "unknown_run", "rate_limited",
                    "too_big", "internal", "unknown_session", "invalid_step"]
# The states a timeline lane can be in: `running` on the CPU; `blocked` in a system call (sleep, socket,
# database), holding its thread but no CPU; `waiting` suspended at an await; `lock-wait` waiting for a lock;
# `queued` ready but not started; then `done` or `failed`. The widget's legend says the same in words.
LANE_STATES = frozenset({"running", "blocked", "waiting", "lock-wait", "queued", "done", "failed"})

__all__ = [
    "LANE_STATES", "AcceptedMessage", "Demo", "Emit", "ErrorCode", "ErrorMessage", "EventsMessage", "FinishedMessage",
    "JobQueue", "Placement", "ProtocolMessage", "RunCancelled", "RunCompare", "RunOrigin", "RunRequest", "RunStatus",
    "RunTimedOut", "StepMode",
]


class Emit(Protocol):
    """What every demo's `run` receives, on either placement."""

    def __call__(self, kind: str, **fields: Any) -> float:
        """Record one event of `kind`; returns its `t` (ms since the run started). Raises like `check_cancelled`."""
        ...

    def check_cancelled(self) -> None:
        """Raise RunCancelled if the reader stopped the run, RunTimedOut if it is past its time limit."""
        ...

    def elapsed_ms(self) -> float:
        """Milliseconds since the run started."""
        ...


@dataclass(frozen=True)
class StepMode:
    """A demo the reader can step by hand, over `/ws/steps/<slug>/`.

    `consumer` is the dotted path of its websocket consumer (a
    demos.sockets.GuardedJsonConsumer); `scenarios` its levels, what a lesson
    block may choose with `level:`, the first being the default; `label`
    names the widget for screen readers; `fallback` is the sentence shown
    where JavaScript is off; `text` every word the step widget shows (the page
    carries it, so the front end names no demo), each level's goal among them:
    text["scenarios"][i]["level"] = {goal, reachable, reached, missed}.
    """

    consumer: str
    scenarios: tuple[str, ...]
    label: str
    fallback: str
    text: dict[str, Any]


@runtime_checkable
class Demo(Protocol):
    slug: str
    title: str
    concept: str
    placement: Placement
    params: tuple
    time_limit_s: float
    lanes: str

    def run(self, params: dict[str, Any], emit: Emit) -> Any: ...


class RunCancelled(Exception):
    """Raised by `emit` and `emit.check_cancelled()` once the reader has stopped the run."""


class RunTimedOut(Exception):
    """Raised by `emit` and `emit.check_cancelled()` once the run is past its time limit.

    Celery's own soft limit needs the prefork pool's signals; this check works
    in any pool and on the web loop, and the hard limits stay as the backstop.
    """


class RunCompare(TypedDict):
    """In a `run` request: this run is one side of a side-by-side compare (`group` a UUID the widget chose)."""

    group: str
    side: Literal["A", "B"]


class RunOrigin(TypedDict):
    """In a `run` request: the lesson page (`path`) and its demo block (1-based) the reader started it from."""

    path: str
    block: int


class RunRequest(TypedDict):
    """The client's `run` message; `compare` and `origin` are optional and only recorded on the run."""

    type: Literal["run"]
    demo: str
    params: dict[str, Any]
    ref: NotRequired[str | None]
    compare: NotRequired[RunCompare]
    origin: NotRequired[RunOrigin]


class AcceptedMessage(TypedDict):
    type: Literal["accepted"]
    ref: str | None
    run: str
    demo: str
    params: dict[str, Any]


class EventsMessage(TypedDict):
    type: Literal["events"]
    run: str
    seq: int
    started_at: float
    events: list[dict[str, Any]]


class FinishedMessage(TypedDict):
    type: Literal["finished"]
    run: str
    status: RunStatus
    summary: dict[str, Any]


class ErrorMessage(TypedDict):
    type: Literal["error"]
    code: ErrorCode
    message: str
    ref: NotRequired[str | None]
    run: NotRequired[str]
    retry_after_s: NotRequired[float]


ProtocolMessage = AcceptedMessage | EventsMessage | FinishedMessage | ErrorMessage
