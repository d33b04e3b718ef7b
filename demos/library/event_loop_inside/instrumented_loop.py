"""CPython's own selector event loop, made to report each iteration; nothing re-implemented.

Two hooks: the selector is a `selectors.DefaultSelector` subclass that notes
each `select(timeout)` call (the timeout, the time spent inside, the
descriptors reported), and the loop subclass wraps `_run_once`, the private
method that is one iteration, reading the private ready queue (`_ready`) and
timer heap (`_scheduled`) before it; `_ready` itself is swapped for a deque
subclass that notes each callback as `_run_once` takes it off the queue.
"""
from __future__ import annotations

import asyncio
import collections
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class SelectCall:
    """One select() call as the loop made it."""

    timeout: float | None
    entered: float
    returned: float
    ready: list[tuple[int, int]]  # (fd, selectors.EVENT_READ / EVENT_WRITE bits)

    @property
    def ready_fds(self) -> list[int]:
        """The file descriptors select() reported."""
        return [fd for fd, _events in self.ready]


class RecordingSelector(selectors.DefaultSelector):
    """The platform's default selector, noting each select() call it serves."""

    last_call: SelectCall | None = None

    def select(self, timeout: float | None = None) -> list[tuple[selectors.SelectorKey, int]]:
        """Select as the parent does; remember the timeout, the time inside and the descriptors reported."""
        entered = time.monotonic()
        ready = super().select(timeout)
        self.last_call = SelectCall(timeout, entered, time.monotonic(), [(key.fd, events) for key, events in ready])
        return ready


class RecordingQueue(collections.deque):
    """The loop's ready queue, noting each handle `_run_once` takes off it, and when."""

    def __init__(self) -> None:
        super().__init__()
        self.taken: list[tuple[asyncio.Handle, float, bool]] = []  # (handle, when taken, skipped as cancelled)

    def popleft(self) -> asyncio.Handle:
        """Take the next handle, as `_run_once` does once per callback it runs (or skips, when cancelled)."""
        handle = super().popleft()
        self.taken.append((handle, time.monotonic(), handle.cancelled()))
        return handle


@dataclass
class Iteration:
    """What one call of `_run_once` found, did and cost."""

    number: int
    began: float
    ended: float
    ready_before: int
    timers_pending: int
    next_deadline: float | None
    select: SelectCall
    ran: list[tuple[asyncio.Handle, float, float]]  # (handle, started, seconds)

    @property
    def busy_s(self) -> float:
        """Time spent outside select(): working out the timeout, moving due timers, running callbacks."""
        return (self.ended - self.began) - (self.select.returned - self.select.entered)


class InstrumentedLoop(asyncio.SelectorEventLoop):
    """CPython's selector event loop, unchanged except that it reports each iteration.

    `_run_once`, `_ready` and `_scheduled` are private to asyncio: they are
    what CPython 3.11 runs, but no release promises to keep them. Fine for a
    demo about the loop's internals, never for production code. `on_iteration` is called after each iteration;
    if it raises, the loop stops reporting (so that asyncio's own clean-up
    turns run quietly) and the exception ends `run_until_complete`.
    """

    def __init__(self, on_iteration: Callable[[Iteration], None]) -> None:
        self._recording_selector = RecordingSelector()
        super().__init__(selector=self._recording_selector)
        self._ready: RecordingQueue = RecordingQueue()  # asyncio's private ready queue, made observable
        self.on_iteration: Callable[[Iteration], None] | None = on_iteration
        self.iterations = 0

    def _run_once(self) -> None:
        report = self.on_iteration
        if report is None:
            super()._run_once()  # type: ignore[misc]  # private to asyncio, absent from its stubs
            return
        pending = [handle for handle in self._scheduled if not handle.cancelled()]  # type: ignore[attr-defined]  # the private timer heap
        ready_before = len(self._ready)
        self._ready.taken.clear()
        self._recording_selector.last_call = None
        began = time.monotonic()
        super()._run_once()  # type: ignore[misc]
        ended = time.monotonic()
        call = self._recording_selector.last_call
        if call is None:
            raise RuntimeError("the loop went round without calling select()")
        taken = [(handle, started) for handle, started, skipped in self._ready.taken if not skipped]
        # A callback runs from its own start to the next one's (or the iteration's end).
        finishes = [started for _handle, started in taken[1:]] + [ended]
        ran = [(handle, started, finish - started) for (handle, started), finish in zip(taken, finishes, strict=True)]
        self.iterations += 1
        iteration = Iteration(self.iterations, began, ended, ready_before, len(pending),
                              min((handle.when() for handle in pending), default=None), call, ran)
        try:
            report(iteration)
        except BaseException:
            self.on_iteration = None
            raise
