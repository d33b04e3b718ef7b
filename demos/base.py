"""What a demo module is, and the message shapes of the public protocol.

A demo is a module under `demos/library/` with these attributes:

    slug: str                 # public name, used in URLs and lesson blocks
    title: str                # shown above the widget
    concept: str              # the idea it proves, in one line
    placement: "loop" | "worker"
    params: tuple[Param, ...] # declared parameters (demos.params)
    time_limit_s: float       # hard limit for one run
    lanes: str                # what one timeline lane is ("request", "client", ...)
    run(params, emit) -> dict # the summary; async def for loop demos, def for worker demos

and optionally `check_params(values)` (cross-parameter rules, raising
ParamError) and `smoke_params` (a small preset the test suite runs).

`emit(kind, **fields)` records one event; it stamps `t` (ms since the run
started) unless given. Summaries are plain JSON dicts computed from measured
times, with a `text` entry stating the claim in words.
"""
from __future__ import annotations

from typing import Any, Literal, Protocol, TypedDict, runtime_checkable

from coursesite.processes import JobQueueSpec as JobQueue  # noqa: F401  (what a demo declares its queues with)


Placement = Literal["loop", "worker"]
RunStatus = Literal["running", "succeeded", "failed", "cancelled", "timed_out"]
ErrorCode = Literal["bad_message", "unknown_demo", "invalid_params", "busy", "unavailable", "unknown_run", "rate_limited", "too_big", "internal"]


@runtime_checkable
class Demo(Protocol):
    slug: str
    title: str
    concept: str
    placement: Placement
    params: tuple
    time_limit_s: float
    lanes: str

    def run(self, params: dict[str, Any], emit: Any) -> Any: ...


class Emit(Protocol):
    def __call__(self, kind: str, **fields: Any) -> None: ...


class RunCancelled(Exception):
    """Raised inside a worker demo when its run was cancelled by the reader."""


class RunTimedOut(Exception):
    """Raised inside a worker demo that is past its time limit.

    Celery's own soft limit needs the prefork pool's signals; this check works
    in any pool, and the hard limit stays as the backstop.
    """


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
    events: list[dict[str, Any]]


class FinishedMessage(TypedDict):
    type: Literal["finished"]
    run: str
    status: RunStatus
    summary: dict[str, Any]


class ErrorMessage(TypedDict, total=False):
    type: Literal["error"]
    code: ErrorCode
    message: str
    ref: str
    run: str
    retry_after_s: float
