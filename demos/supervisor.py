"""One run's lifecycle, whatever its placement.

The consumer hands a validated request to `start_run()`; what comes back is a
`SupervisedRun` with the same states, cancel semantics and summaries on both
placements:

- `LoopRun`: the demo is a task on this event loop.
- `WorkerRun`: the demo runs in a Celery worker (`run_in_worker`, the other
  half of this module, is what the worker executes); its messages come back
  through the run's channel-layer group and reach the run through `relay()`.

Every run ends exactly once with one of succeeded, failed, cancelled or
timed_out; the record in PostgreSQL decides which ending wins when two race
(a reader's cancel against the demo's own end). Stopped, timed-out and failed
runs all carry `text` and `elapsed_ms` in their summary, and failed ones the
`error` class, whichever side ended them.
"""
from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, ClassVar, cast

from asgiref.sync import sync_to_async
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError

from coursesite import keys
from coursesite.loop_db import DatabaseUnavailable
from coursesite.redis_clients import async_redis, close_async_redis
from demos import cpu_turns, workers
from demos.base import (
    AcceptedMessage, Demo, ErrorCode, EventsMessage, FinishedMessage, ProtocolMessage, RunCancelled, RunCompare,
    RunOrigin, RunStatus, RunTimedOut,
)
from demos.events import EventRecorder, encode_events, encode_events_cooperatively
from demos.limits import acquire_slot, address_cap_for, release_slot
from demos.models import Run
from demos.sender import RunSender
from demos.services import (
    run_create_on_loop, run_ending_on_loop, run_finish_later, run_finish_on_loop, run_finish_with_events,
    run_finish_with_events_on_loop,
)

logger = logging.getLogger("demos.supervisor")

Send = Callable[[ProtocolMessage], Awaitable[None]]


class RunRefused(Exception):
    """The run could not start; `code` and `retry_after_s` are what the reader is told."""

    def __init__(self, code: ErrorCode, message: str, *, retry_after_s: float | None = None, run_id: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.retry_after_s = retry_after_s
        self.run_id = run_id


# --- summaries: one wording for both placements -------------------------------------------------

def ended_summary(status: str, *, elapsed_ms: float, time_limit_s: float, reason: str | None = None,
                  error: BaseException | None = None) -> dict[str, Any]:
    """The summary of a run that did not finish by itself: stopped, timed out or failed."""
    elapsed = round(elapsed_ms, 1)
    if status == Run.Status.CANCELLED:
        text = reason or f"Stopped by the reader after {elapsed_ms:.0f} ms."
        return {"text": text, "elapsed_ms": elapsed}
    if status == Run.Status.TIMED_OUT:
        return {"text": f"Stopped at the {time_limit_s:g} s time limit.", "elapsed_ms": elapsed}
    if error is not None:
        return {"text": f"The run failed: {error.__class__.__name__}: {error}"[:500], "error": error.__class__.__name__,
                "elapsed_ms": elapsed}
    return {"text": reason or "The run failed.", "error": "Abandoned", "elapsed_ms": elapsed}


def _stop_reason(error: BaseException) -> type[BaseException] | None:
    """RunCancelled or RunTimedOut when that is what stopped the demo.

    A demo that runs tasks of its own (a TaskGroup in its sandbox loop) sees
    the engine's stop wrapped in an exception group; unwrapping it is the
    engine's job, not the demo's. A group that also holds a real failure is a
    failure.
    """
    if isinstance(error, (RunCancelled, RunTimedOut)):
        return type(error)
    if isinstance(error, BaseExceptionGroup):
        stops, others = error.split((RunCancelled, RunTimedOut))
        if stops is not None and others is None:
            return RunTimedOut if stops.subgroup(RunTimedOut) is not None else RunCancelled
    return None


# --- what a demo receives --------------------------------------------------------------------------

class RunEmitter:
    """The `emit` every demo gets (demos.base.Emit), the same on both placements.

    Calling it records an event. `check_cancelled()` raises RunCancelled once
    the run was asked to stop and RunTimedOut past its time limit; emitting
    checks too, so a demo that emits often needs no other check.
    """

    def __init__(self, recorder: EventRecorder, *, time_limit_s: float) -> None:
        self.recorder = recorder
        self.stop_requested = threading.Event()
        self.deadline = time.monotonic() + time_limit_s

    def __call__(self, kind: str, **fields: Any) -> float:
        self.check_cancelled()
        return self.recorder(kind, **fields)

    def check_cancelled(self) -> None:
        """Raise if the run should stop now."""
        if self.stop_requested.is_set():
            raise RunCancelled()
        if time.monotonic() > self.deadline:
            raise RunTimedOut()

    def elapsed_ms(self) -> float:
        """Milliseconds since the run started."""
        return self.recorder.elapsed_ms()


def _outcome_of(error: BaseException | None, summary: dict[str, Any] | None, *, emitter: RunEmitter, demo: Demo,
                timed_out: bool = False) -> tuple[RunStatus, dict[str, Any]]:
    """Map how the demo's `run` ended to the run's status and summary."""
    elapsed_ms = emitter.elapsed_ms()
    if error is None and summary is not None:
        return "succeeded", summary
    stop = _stop_reason(error) if error is not None else None
    if timed_out or stop is RunTimedOut or isinstance(error, SoftTimeLimitExceeded):
        return "timed_out", ended_summary(Run.Status.TIMED_OUT, elapsed_ms=elapsed_ms, time_limit_s=demo.time_limit_s)
    if stop is RunCancelled or isinstance(error, asyncio.CancelledError):
        return "cancelled", ended_summary(Run.Status.CANCELLED, elapsed_ms=elapsed_ms, time_limit_s=demo.time_limit_s)
    return "failed", ended_summary(Run.Status.FAILED, elapsed_ms=elapsed_ms, time_limit_s=demo.time_limit_s, error=error)


# --- batches --------------------------------------------------------------------------------------

def _batch_message(run_id: str, recorder: EventRecorder) -> EventsMessage | None:
    """The next batch as a message, taken off the recorder; None when nothing is pending."""
    batch = recorder.take_batch()
    if batch is None:
        return None
    seq, events = batch
    return {"type": "events", "run": run_id, "seq": seq, "started_at": recorder.started_at, "events": events}


async def _send_batch(run_id: str, recorder: EventRecorder, send: Send) -> None:
    message = _batch_message(run_id, recorder)
    if message is not None:
        await send(message)


async def _drain(run_id: str, recorder: EventRecorder, send: Send) -> None:
    """Send everything still pending, in as many batches as it takes."""
    while recorder.has_pending():
        await _send_batch(run_id, recorder, send)


async def _pump(run_id: str, recorder: EventRecorder, send: Send, pending: asyncio.Event) -> None:
    """Send batches as events arrive, at most one every DEMO_BATCH_INTERVAL_S.

    It sleeps until the recorder says something is pending rather than
    waking 20 times a second: a thousand quiet runs on one loop would
    otherwise cost it 20,000 wake-ups a second. Events emitted together in
    one step of the demo still go out together, since the pump only runs
    once the demo awaits.
    """
    loop = asyncio.get_running_loop()
    interval = settings.DEMO_BATCH_INTERVAL_S
    last_sent = float("-inf")
    while True:
        if not recorder.has_pending():
            pending.clear()
            await pending.wait()
        too_soon = last_sent + interval - loop.time()
        if too_soon > 0:
            await asyncio.sleep(too_soon)
        await _send_batch(run_id, recorder, send)
        last_sent = loop.time()


def _waker(event: asyncio.Event) -> Callable[[], None]:
    """Set `event` from any thread: directly on the loop's own thread (loop demos emit there), safely from others."""
    loop, loop_thread = asyncio.get_running_loop(), threading.get_ident()

    def wake() -> None:
        if threading.get_ident() == loop_thread:
            event.set()
        else:
            loop.call_soon_threadsafe(event.set)

    return wake


# --- the web side ----------------------------------------------------------------------------------

# Runs this process is serving. If the server stops without its consumers
# getting to clean up (Daphne's SIGTERM path), they are recorded at exit.
_runs_in_this_process: set[str] = set()


def _record_runs_left_at_exit() -> None:
    from demos.services import run_endings_pending

    if not _runs_in_this_process and not run_endings_pending():
        return

    def record() -> None:  # in a thread: no event loop there, so the sync ORM is allowed
        from demos.services import run_endings_write_now, runs_cancel

        run_endings_write_now()  # endings the readers saw first, then the runs the shutdown stopped
        runs_cancel(run_ids=list(_runs_in_this_process), summary={"text": "Stopped: the server shut down.", "elapsed_ms": None})

    recorder = threading.Thread(target=record)
    recorder.start()
    recorder.join(timeout=10)


atexit.register(_record_runs_left_at_exit)


class SupervisedRun:
    """One run in flight, seen from the socket that started it."""

    placement: ClassVar[str]

    def __init__(self, *, run_id: str, demo: Demo, params: dict[str, Any], send: Send,
                 on_end: Callable[[SupervisedRun], None]) -> None:
        self.run_id = run_id
        self.demo = demo
        self.params = params
        self.send = send
        self._on_end = on_end
        self._ended = asyncio.Event()
        self.accepted_at = time.monotonic()
        self.queued_since: float | None = None  # wall time it was accepted, when it had to wait for its turn

    async def begin(self) -> None:
        """Start the run (called once, after `accepted` went out)."""
        raise NotImplementedError

    async def cancel(self, reason: str | None = None) -> None:
        """Stop the run and wait until its ending is recorded; a no-op once it has ended."""
        raise NotImplementedError

    async def relay(self, event: dict[str, Any]) -> None:
        """A message the run's worker published to its group (worker runs only use it)."""

    async def wait(self) -> None:
        """Until the run has ended and its ending is recorded."""
        await self._ended.wait()

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    async def _release(self) -> None:
        """Give back what the run held: its place in this process and its site-wide slot."""
        if self._ended.is_set():
            return
        _runs_in_this_process.discard(self.run_id)
        try:
            await release_slot(placement=self.placement, run_id=self.run_id)
        except RedisError:
            logger.warning("could not release the slot of run %s; it expires by itself", self.run_id)
        self._ended.set()
        self._on_end(self)


class LoopRun(SupervisedRun):
    """A demo that only awaits, run as a task of this event loop."""

    placement = "loop"

    async def begin(self) -> None:
        self._pending = asyncio.Event()
        self._recorder = EventRecorder(on_pending=_waker(self._pending))
        self._emitter = RunEmitter(self._recorder, time_limit_s=self.demo.time_limit_s)
        self._task = asyncio.create_task(self._main())

    async def _main(self) -> None:
        pending, recorder, emitter = self._pending, self._recorder, self._emitter
        pump = asyncio.create_task(_pump(self.run_id, recorder, self.send, pending))
        error: BaseException | None = None
        summary = None
        limit = asyncio.timeout(self.demo.time_limit_s)
        try:
            async with limit:
                summary = await self.demo.run(self.params, emitter)
        except asyncio.CancelledError as cancelled:
            error = cancelled
        except Exception as failure:  # a demo bug must end the run, not the socket
            if not limit.expired() and _stop_reason(failure) is None:  # a stop wrapped in a group is no failure
                logger.exception("demo %s failed", self.demo.slug)
            error = failure
        finally:
            pump.cancel()
        status, summary = _outcome_of(error, summary, emitter=emitter, demo=self.demo, timed_out=limit.expired())
        # The run has ended. Its record and last messages are written even if
        # this task is cancelled again meanwhile (a late cancel, the server
        # shutting down): otherwise the run would be left "running".
        ending = asyncio.ensure_future(self._end(recorder, pump, status, summary))
        while not ending.done():
            try:
                await asyncio.shield(ending)
            except asyncio.CancelledError:
                continue
        ending.result()

    async def _end(self, recorder: EventRecorder, pump: asyncio.Task, status: RunStatus, summary: dict[str, Any]) -> None:
        try:
            await asyncio.gather(pump, return_exceptions=True)
            try:  # readers see the last events now; the record and `finished` follow
                await _drain(self.run_id, recorder, self.send)
            except Exception:
                logger.debug("could not deliver the last events of run %s", self.run_id)
            events_json = await encode_events_cooperatively(recorder.stored)
            try:
                recorded = await run_finish_with_events_on_loop(
                    run_id=self.run_id, status=status, summary=summary, events_json=events_json, dropped=recorder.dropped)
            except DatabaseUnavailable:
                # The reader learns how the run ended now; the record, events included, says the same
                # once PostgreSQL is back (retried in the background, never holding this socket).
                logger.warning("could not record the end of run %s yet: the database is unavailable", self.run_id)
                run_finish_later(run_id=self.run_id, status=status, summary=summary, events_json=events_json,
                                 dropped=recorder.dropped)
                recorded = True
            if recorded:
                finished: FinishedMessage = {"type": "finished", "run": self.run_id, "status": status, "summary": summary}
                try:
                    await _drain(self.run_id, recorder, self.send)
                    await self.send(finished)
                except Exception:
                    logger.debug("could not deliver the end of run %s", self.run_id)
        finally:
            await self._release()

    async def cancel(self, reason: str | None = None) -> None:
        self._emitter.stop_requested.set()
        self._task.cancel()
        await asyncio.wait([self._task])  # unlike gather, never cancels the run's own recording


class WorkerRun(SupervisedRun):
    """A demo that blocks or burns CPU, run by a Celery worker; its messages come back through its group.

    Once a run has started, its worker speaks every DEMO_HEARTBEAT_S; after
    DEMO_WORKER_SILENCE_S of silence the worker is taken for dead. Before it
    starts (queued behind other jobs) only the overall deadline applies,
    unless this process cannot reach Redis at all, in which case no word could
    arrive and the silence window applies from the start. Whenever this side
    ends the run (silence, a worker that could not record its ending, a
    cancel), the reader is told what the record says: the worker's own ending
    if it managed to write one, else this side's.
    """

    placement = "worker"
    channel_layer: Any
    channel_name: str
    # Defaults for a run not begun yet: a CPU-bound run may wait for its turn (demos/cpu_turns.py)
    # and be cancelled before `begin` ever runs.
    last_heard: float | None = None
    _finishing: bool = False
    _watchdog: asyncio.Task | None = None
    # The seq the reader should get next: a batch the pump sent again (its first send timed out after
    # reaching Redis) arrives twice and is passed on once.
    _next_seq: int = 0

    def attach(self, *, channel_layer: Any, channel_name: str) -> WorkerRun:
        """Where the run's group messages must arrive: the consumer's channel."""
        self.channel_layer = channel_layer
        self.channel_name = channel_name
        return self

    async def begin(self) -> None:
        self.last_heard: float | None = None
        self._finishing = False  # set, before any await, by whichever path ends the run
        try:
            await self._enqueue()
        except Exception:  # broker unreachable
            await self._end_here("failed", {"text": "Not started: the job queue is unavailable.", "elapsed_ms": 0.0})
            raise RunRefused("unavailable", "The job queue is unavailable right now; try again shortly.",
                             run_id=self.run_id) from None
        self._watchdog = asyncio.create_task(self._watch())

    async def _enqueue(self) -> None:
        """Join the run's group and enqueue it; one retry, since the first use of
        a connection after Redis restarted can fail where the second succeeds."""
        from demos.tasks import run_worker_demo

        for attempt in (1, 2):
            try:
                await self.channel_layer.group_add(keys.run_group(self.run_id), self.channel_name)
                await sync_to_async(run_worker_demo.apply_async)(
                    args=[self.run_id, self.demo.slug, self.params],
                    kwargs={"queued_since": self.queued_since} if self.queued_since is not None else {},
                    soft_time_limit=self.demo.time_limit_s, time_limit=self.demo.time_limit_s + 5,
                )
                return
            except Exception:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2)

    async def _watch(self) -> None:
        deadline = time.monotonic() + self.demo.time_limit_s + settings.DEMO_QUEUE_GRACE_S
        silence = settings.DEMO_WORKER_SILENCE_S
        redis_lost_since: float | None = None
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            now = time.monotonic()
            if self.last_heard is not None:
                if now - self.last_heard > silence:
                    break
                continue
            if await self._redis_reachable():
                redis_lost_since = None
            elif redis_lost_since is None:
                redis_lost_since = now
            elif now - redis_lost_since > silence:
                break
        await self._end_here("failed", ended_summary(
            Run.Status.FAILED, elapsed_ms=self._elapsed_ms(), time_limit_s=self.demo.time_limit_s,
            reason="The worker running this demo stopped answering; the run was abandoned."))

    @staticmethod
    async def _redis_reachable() -> bool:
        try:
            async with asyncio.timeout(1):
                await async_redis().ping()
        except (RedisError, OSError, TimeoutError):
            return False
        return True

    def _elapsed_ms(self) -> float:
        return (time.monotonic() - self.accepted_at) * 1000

    async def relay(self, event: dict[str, Any]) -> None:
        if self.ended:
            return  # already ended here (cancelled or abandoned)
        self.last_heard = time.monotonic()
        if event.get("type") == "run.alive":
            return
        if event.get("type") == "run.unrecorded":
            # The worker finished but could not record how: end the run here, as the record will say.
            await self._end_here("failed", ended_summary(
                Run.Status.FAILED, elapsed_ms=self._elapsed_ms(), time_limit_s=self.demo.time_limit_s,
                reason="The run's ending could not be recorded (the database was unavailable)."))
            return
        message = event["message"]
        if message["type"] == "events":
            if message["seq"] < self._next_seq:
                return
            self._next_seq = message["seq"] + 1
        if message["type"] == "finished":
            if self._finishing:
                return  # this side is ending the run and tells the reader what the record says
            self._finishing = True
            await self.send(message)
            await self._wind_down()
            return
        await self.send(message)

    async def cancel(self, reason: str | None = None) -> None:
        await self._end_here("cancelled", ended_summary(
            Run.Status.CANCELLED, elapsed_ms=self._elapsed_ms(), time_limit_s=self.demo.time_limit_s, reason=reason))

    async def _end_here(self, status: RunStatus, summary: dict[str, Any]) -> None:
        """End the run from this side (cancel, disconnect, dead or unrecorded worker) and tell the worker to stop.

        The first ending recorded wins. If the worker's won, the reader gets the
        stored one; if PostgreSQL is unreachable, this side's, written later
        by `run_finish_later` so the replay says the same.
        """
        if self._finishing:
            await self._ended.wait()
            return
        self._finishing = True
        told: tuple[str, dict[str, Any]] = (status, summary)
        try:
            if not await run_finish_on_loop(run_id=self.run_id, status=status, summary=summary):
                told = await run_ending_on_loop(run_id=self.run_id) or told
        except DatabaseUnavailable:
            logger.warning("could not record the end of run %s yet: the database is unavailable", self.run_id)
            run_finish_later(run_id=self.run_id, status=status, summary=summary)
        try:
            async with asyncio.timeout(2):
                await async_redis().set(keys.run_cancel(self.run_id), 1, ex=settings.DEMO_CANCEL_FLAG_TTL_S)
        except (RedisError, OSError, TimeoutError):
            logger.warning("could not flag run %s as cancelled", self.run_id)
        await self._wind_down()
        finished: FinishedMessage = {"type": "finished", "run": self.run_id, "status": cast(RunStatus, told[0]),
                                     "summary": told[1]}
        try:
            await self.send(finished)
        except Exception:
            logger.debug("could not deliver the end of run %s", self.run_id)

    async def _wind_down(self) -> None:
        if self.ended:
            return
        watchdog = self._watchdog
        if watchdog is not None and watchdog is not asyncio.current_task():
            watchdog.cancel()
        try:
            async with asyncio.timeout(2):
                await self.channel_layer.group_discard(keys.run_group(self.run_id), self.channel_name)
        except (RedisError, OSError, TimeoutError):
            logger.warning("could not leave the group of run %s; it expires by itself", self.run_id)
        await self._release()


PLACEMENTS: dict[str, type[SupervisedRun]] = {"loop": LoopRun, "worker": WorkerRun}


def pool_exhausted(error: RedisError) -> bool:
    """Whether a Redis error only says this process's connection pool had no free connection in time (overload)."""
    return isinstance(error, RedisConnectionError) and str(error) == "No connection available."


async def start_run(*, demo: Demo, params: dict[str, Any], ref: str | None, send: Send,
                    on_end: Callable[[SupervisedRun], None], channel_layer: Any = None, channel_name: str = "",
                    client_address: str | None = None, compare: RunCompare | None = None,
                    origin: RunOrigin | None = None) -> SupervisedRun:
    """Admit a validated run request and start it; RunRefused when it cannot start.

    Admission comes before any work: a worker demo needs a live demo worker,
    every run a record and a slot on its placement, both site-wide and within
    its client address's share (`client_address`; None counts only site-wide).
    The reader gets `accepted` (with every parameter filled in) before the
    first event. `compare` and `origin` are recorded on the run (see
    `run_create_on_loop`) and change nothing about how it runs.
    """
    if demo.placement == "worker" and not await workers.available():
        raise RunRefused("unavailable", "No demo worker is running right now, so this demo cannot start.")
    try:
        run_id = await run_create_on_loop(demo_slug=demo.slug, placement=demo.placement, params=params,
                                          compare=compare, origin=origin)
    except DatabaseUnavailable:
        # Nothing was written; the next run request connects afresh.
        raise RunRefused("unavailable", "The run records are unavailable right now; try again shortly.") from None
    try:
        refused = await acquire_slot(placement=demo.placement, run_id=run_id, time_limit_s=demo.time_limit_s,
                                     client_address=client_address)
    except RedisError as error:
        if pool_exhausted(error):
            # Redis is up; this process has every connection to it in use and waited its timeout for one:
            # it is over its capacity, and the reader is told so, as at the socket gate.
            await run_finish_on_loop(run_id=run_id, status=Run.Status.CANCELLED,
                                     summary={"text": "Not started: the site was busy.", "elapsed_ms": 0.0})
            raise RunRefused("busy", "The site is serving as many readers as it can right now; try again in a few "
                             "seconds.", retry_after_s=settings.DEMO_BUSY_RETRY_AFTER_S) from None
        await run_finish_on_loop(run_id=run_id, status=Run.Status.FAILED,
                                 summary={"text": "Not started: Redis is unavailable.", "elapsed_ms": 0.0})
        raise RunRefused("unavailable", "The demo service is unavailable right now; try again shortly.") from None
    if refused is not None:
        await run_finish_on_loop(run_id=run_id, status=Run.Status.CANCELLED,
                                 summary={"text": "Not started: the site was busy.", "elapsed_ms": 0.0})
        if refused.mine:
            message = (f"Your address already has {address_cap_for(demo.placement)} demos of this kind running; "
                       f"try again in about {refused.retry_after_s:.0f} s.")
        else:
            message = f"Too many demos are running across the site; try again in about {refused.retry_after_s:.0f} s."
        raise RunRefused("busy", message, retry_after_s=refused.retry_after_s)
    run = PLACEMENTS[demo.placement](run_id=run_id, demo=demo, params=params, send=send, on_end=on_end)
    if isinstance(run, WorkerRun):
        run.attach(channel_layer=channel_layer, channel_name=channel_name)
    _runs_in_this_process.add(run_id)
    accepted: AcceptedMessage = {"type": "accepted", "ref": ref, "run": run_id, "demo": demo.slug, "params": params}
    await send(accepted)
    if cpu_turns.burns_cpu(demo):  # one reader's CPU-bound runs take turns (demos/cpu_turns.py)
        await cpu_turns.begin_in_turn(run, reader=channel_name or run_id, begin=run.begin)
    else:
        await run.begin()
    return run


async def settle(runs: Iterable[SupervisedRun], reason: str) -> None:
    """Stop every run in `runs` and wait until each ending is recorded, even if this task is cancelled meanwhile.

    Daphne cancels consumers at shutdown, possibly in the middle of their
    disconnect; runs must still end recorded, not "running" for ever.
    """
    runs = list(runs)
    if not runs:
        return
    stopping: asyncio.Future[Any] = asyncio.ensure_future(
        asyncio.gather(*(run.cancel(reason) for run in runs), return_exceptions=True))
    while True:
        pending: list[asyncio.Future[Any]] = [task for task in (stopping,) if not task.done()]
        pending += [asyncio.ensure_future(run.wait()) for run in runs if not run.ended]
        if not pending:
            return
        try:
            await asyncio.shield(asyncio.wait(pending))
        except asyncio.CancelledError:
            continue


# --- the worker side -------------------------------------------------------------------------------

class WorkerPump(threading.Thread):
    """Sends a worker run's batches and heartbeats and watches for its cancel flag.

    Its own event loop in its own thread: the demo in the main thread may block
    or burn CPU as much as it likes without delaying the stream. Every Redis
    call it makes is bounded by DEMO_WORKER_FLUSH_S, so a lost Redis delays
    nothing but the stream, and `finish()` ends the thread on every path: the
    socket hears the run's end from its last message or, if that cannot be
    sent, from the heartbeats stopping.
    """

    def __init__(self, run_id: str, recorder: EventRecorder, stop_requested: threading.Event) -> None:
        super().__init__(name=f"demo-pump-{run_id}", daemon=True)
        self.run_id = run_id
        self.recorder = recorder
        self.stop_requested = stop_requested
        self._finishing = threading.Event()
        self._final_message: FinishedMessage | None = None
        self._unrecorded = False

    def run(self) -> None:
        try:
            asyncio.run(self._main())
        finally:
            logger.info("run %s: pump stopped", self.run_id)  # the fault tests look for this line

    async def _main(self) -> None:
        sender = RunSender(self.run_id)
        redis = async_redis()
        bound = settings.DEMO_WORKER_FLUSH_S
        # A batch taken off the recorder whose send failed or timed out: it is sent again before any
        # later one, never skipped (a reader would see a gap). A timeout after Redis had it makes a
        # duplicate, which the socket drops by its seq.
        unsent: EventsMessage | None = None
        try:
            last_alive = 0.0
            while not self._finishing.is_set():
                await asyncio.sleep(settings.DEMO_BATCH_INTERVAL_S)
                try:
                    async with asyncio.timeout(bound):
                        if await redis.exists(keys.run_cancel(self.run_id)):
                            self.stop_requested.set()
                        unsent = unsent or _batch_message(self.run_id, self.recorder)
                        if unsent is not None:
                            await sender.send(unsent)
                            unsent = None
                        if time.monotonic() - last_alive >= settings.DEMO_HEARTBEAT_S:
                            await sender.send_alive()  # lets the socket tell a quiet run from a dead worker
                            last_alive = time.monotonic()
                except (RedisError, OSError, TimeoutError):
                    logger.warning("run %s: Redis unreachable; events wait for it", self.run_id)
            try:
                async with asyncio.timeout(bound):
                    if unsent is not None:
                        await sender.send(unsent)
                    await _drain(self.run_id, self.recorder, sender.send)
                    if self._final_message is not None:
                        await sender.send(self._final_message)
                    elif self._unrecorded:
                        await sender.send_unrecorded()
            except (RedisError, OSError, TimeoutError):
                # The socket's watchdog hears the silence and ends the run from the record.
                logger.warning("run %s: its last messages were lost with Redis", self.run_id)
        finally:
            for closing in (close_async_redis(), sender.close()):
                try:
                    async with asyncio.timeout(bound):
                        await closing
                except (RedisError, OSError, TimeoutError):
                    pass

    def finish(self, final_message: FinishedMessage | None, *, unrecorded: bool = False) -> None:
        """Flush what is left, send the final message (or, if the ending went unrecorded, say so), end the thread."""
        self._final_message = final_message
        self._unrecorded = unrecorded
        self._finishing.set()
        self.join(timeout=3 * settings.DEMO_WORKER_FLUSH_S + 1)
        if self.is_alive():
            logger.error("run %s: its pump outlived the run", self.run_id)


def _record_ending(*, run_id: str, status: RunStatus, summary: dict[str, Any], recorder: EventRecorder) -> bool | None:
    """`run_finish_with_events` from the worker: True if this ended the run, False if it had ended, None if unrecorded.

    One more try on a fresh connection, since the first statement after a
    PostgreSQL restart fails on the connection the restart broke; then the
    socket is left to end the run, within its silence window.
    """
    from django.db import DatabaseError, connection

    events_json = encode_events(recorder.stored)
    for attempt in (1, 2):
        try:
            return run_finish_with_events(run_id=run_id, status=status, summary=summary, events_json=events_json,
                                          dropped=recorder.dropped)
        except DatabaseError:
            connection.close()
            if attempt == 1:
                time.sleep(0.5)  # a worker thread, not an event loop: a short wait before the second try
    logger.warning("run %s ended %s, but the database is unavailable to record it", run_id, status)
    return None


def run_in_worker(*, run_id: str, demo: Demo, params: dict[str, Any], queued_since: float | None = None) -> RunStatus:
    """Run one worker-placed demo in this (Celery worker) thread, streaming through the channel layer.

    A run that waited for its turn (`queued_since`, demos/cpu_turns.py) counts
    its time from its acceptance and opens with a note of the wait.
    """
    recorder = EventRecorder()
    if queued_since is not None:
        waited_s = max(0.0, time.time() - queued_since)
        recorder.started -= waited_s
        recorder.started_at = round(recorder.started_at - waited_s, 4)
        recorder("log", text=cpu_turns.queued_note(waited_s * 1000))
    emitter = RunEmitter(recorder, time_limit_s=demo.time_limit_s)
    pump = WorkerPump(run_id, recorder, emitter.stop_requested)
    final: FinishedMessage | None = None
    recorded: bool | None = False
    pump.start()
    try:
        error: BaseException | None = None
        summary = None
        host = cpu_turns.host_conditions() if cpu_turns.burns_cpu(demo) else {}
        try:
            summary = demo.run(params, emitter)
        except (Exception, SoftTimeLimitExceeded) as failure:
            error = failure
        status, summary = _outcome_of(error, summary, emitter=emitter, demo=demo)
        for key, value in host.items():  # every CPU-bound summary says how loaded the machine was
            summary.setdefault(key, value)
        if status == "timed_out":
            # Where every thread was when the limit struck: a demo that should have ended sooner says why here.
            logger.warning("worker demo %s stopped at its %s s time limit\n%s", demo.slug, demo.time_limit_s,
                           thread_stacks(), exc_info=error)
        elif status == "failed":
            logger.error("worker demo %s failed", demo.slug, exc_info=error)
        recorded = _record_ending(run_id=run_id, status=status, summary=summary, recorder=recorder)
        if recorded:
            final = {"type": "finished", "run": run_id, "status": status, "summary": summary}
        return status
    finally:
        pump.finish(final, unrecorded=recorded is None)


def thread_stacks() -> str:
    """Every thread's current stack, for the log."""
    import sys
    import traceback

    names = {thread.ident: thread.name for thread in threading.enumerate()}
    return "\n".join(f"--- thread {names.get(ident, ident)}\n{''.join(traceback.format_stack(frame))}"
                     for ident, frame in sys._current_frames().items())
