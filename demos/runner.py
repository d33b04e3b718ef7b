"""Running one demo: on the web event loop, or inside a Celery worker.

Both paths share the same shape: a recorder collects events, a pump sends a
numbered batch at most every 50 ms, the run ends with exactly one status, and
the record in PostgreSQL gets the summary and the events for replay.
"""
from __future__ import annotations

import asyncio
import logging
import threading
import time
from typing import Any, Awaitable, Callable


from coursesite.loop_db import DatabaseUnavailable
from demos.base import RunCancelled, RunTimedOut
from demos.events import BATCH_INTERVAL_S, EventRecorder, encode_events_cooperatively
from demos.models import Run
from demos.services import run_finish_with_events_on_loop

logger = logging.getLogger("demos.runner")

Send = Callable[[dict[str, Any]], Awaitable[None]]

# A worker run says "still here" this often; the socket gives up after WORKER_SILENCE_S.
ALIVE_INTERVAL_S = 1.0
WORKER_SILENCE_S = 5.0


def failure_summary(error: BaseException) -> dict[str, Any]:
    """What a reader is told when a demo raised: the error, never a traceback."""
    return {"text": f"The run failed: {error.__class__.__name__}: {error}"[:500], "error": error.__class__.__name__}


def _summary_for(status: str, recorder: EventRecorder, limit_s: float) -> dict[str, Any]:
    elapsed = recorder.elapsed_ms()
    if status == Run.Status.CANCELLED:
        return {"text": f"Stopped by the reader after {elapsed:.0f} ms.", "elapsed_ms": round(elapsed, 1)}
    return {"text": f"Stopped at the {limit_s:g} s time limit.", "elapsed_ms": round(elapsed, 1)}


async def _send_batch(run_id: str, recorder: EventRecorder, send: Send) -> None:
    batch = recorder.take_batch()
    if batch is not None:
        seq, events = batch
        await send({"type": "events", "run": run_id, "seq": seq, "started_at": recorder.started_at, "events": events})


async def _drain(run_id: str, recorder: EventRecorder, send: Send) -> None:
    """Send everything still pending, in as many batches as it takes."""
    while recorder.has_pending():
        await _send_batch(run_id, recorder, send)


async def _pump(run_id: str, recorder: EventRecorder, send: Send, pending: asyncio.Event) -> None:
    """Send batches as events arrive, at most one every BATCH_INTERVAL_S.

    It sleeps until the recorder says something is pending, rather than
    waking 20 times a second: a thousand quiet runs on one loop would
    otherwise cost it 20,000 wake-ups a second. Events emitted together in
    one step of the demo still go out together, since the pump only runs
    once the demo awaits.
    """
    loop = asyncio.get_running_loop()
    last_sent = float("-inf")
    while True:
        if not recorder.has_pending():
            pending.clear()
            await pending.wait()
        too_soon = last_sent + BATCH_INTERVAL_S - loop.time()
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


async def run_on_loop(*, run_id: str, demo, params: dict[str, Any], send: Send) -> str:
    """Run a loop-placed demo as a task of the current loop; return its status.

    Cancelling the task that awaits this stops the demo and records the run as
    cancelled; the finished message is still sent if the socket is open.
    """
    pending = asyncio.Event()
    recorder = EventRecorder(on_pending=_waker(pending))
    pump = asyncio.create_task(_pump(run_id, recorder, send, pending))
    try:
        async with asyncio.timeout(demo.time_limit_s):
            summary = await demo.run(params, recorder)
        status = Run.Status.SUCCEEDED
    except TimeoutError:
        status, summary = Run.Status.TIMED_OUT, _summary_for(Run.Status.TIMED_OUT, recorder, demo.time_limit_s)
    except asyncio.CancelledError:
        status, summary = Run.Status.CANCELLED, _summary_for(Run.Status.CANCELLED, recorder, demo.time_limit_s)
    except Exception as error:  # a demo bug must end the run, not the socket
        logger.exception("demo %s failed", demo.slug)
        status, summary = Run.Status.FAILED, failure_summary(error)
    finally:
        pump.cancel()
    # The run has ended. Its record and last messages are written even if this
    # task is cancelled again meanwhile (a late cancel from the reader, the
    # server shutting down): otherwise the run would be left "running".
    ending = asyncio.ensure_future(_end_run(run_id, recorder, send, pump, status, summary))
    while not ending.done():
        try:
            await asyncio.shield(ending)
        except asyncio.CancelledError:
            continue
    ending.result()
    return status


async def _end_run(run_id: str, recorder: EventRecorder, send: Send, pump: asyncio.Task, status: str, summary: dict[str, Any]) -> None:
    await asyncio.gather(pump, return_exceptions=True)
    # Readers see the last events now; the record and `finished` follow.
    try:
        await _drain(run_id, recorder, send)
    except Exception:  # the socket went away: the record is what remains
        logger.debug("could not deliver the last events of run %s", run_id)
    events_json = await encode_events_cooperatively(recorder.stored)
    try:
        recorded = await run_finish_with_events_on_loop(
            run_id=run_id, status=status, summary=summary, events_json=events_json, dropped=recorder.dropped)
    except DatabaseUnavailable:
        # The reader still learns how the run ended; the sweeper marks its record later.
        logger.warning("could not record the end of run %s: the database is unavailable", run_id)
        recorded = True
    if recorded:
        try:
            await _drain(run_id, recorder, send)
            await send({"type": "finished", "run": run_id, "status": status, "summary": summary})
        except Exception:  # the socket went away: the record is what remains
            logger.debug("could not deliver the end of run %s", run_id)


class WorkerEmit:
    """The `emit` a worker demo gets: records events, and stops a run that was
    cancelled or is past its time limit."""

    def __init__(self, recorder: EventRecorder, cancelled: threading.Event, time_limit_s: float) -> None:
        self.recorder = recorder
        self.cancelled = cancelled
        self.deadline = time.monotonic() + time_limit_s

    def __call__(self, kind: str, **fields: Any) -> float:
        self.check_cancelled()
        return self.recorder(kind, **fields)

    def check_cancelled(self) -> None:
        """Raise if the run should stop; demos that go a while without emitting call this."""
        if self.cancelled.is_set():
            raise RunCancelled()
        if time.monotonic() > self.deadline:
            raise RunTimedOut()


class WorkerPump(threading.Thread):
    """Sends a worker run's batches and watches for its cancel flag.

    Its own event loop in its own thread: the demo in the main thread may block
    or burn CPU as much as it likes without delaying the stream.
    """

    def __init__(self, run_id: str, recorder: EventRecorder) -> None:
        super().__init__(name=f"demo-pump-{run_id}", daemon=True)
        self.run_id = run_id
        self.recorder = recorder
        self.cancelled = threading.Event()
        self._stop_requested = threading.Event()
        self._final_message: dict[str, Any] | None = None

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        from django.conf import settings
        from redis.asyncio import Redis

        from demos.sender import RunSender, cancel_key

        sender = RunSender(self.run_id)
        redis = Redis.from_url(settings.REDIS_URL)
        try:
            last_alive = 0.0
            while not self._stop_requested.is_set():
                await asyncio.sleep(BATCH_INTERVAL_S)
                if await redis.exists(cancel_key(self.run_id)):
                    self.cancelled.set()
                await _send_batch(self.run_id, self.recorder, sender.send)
                if time.monotonic() - last_alive >= ALIVE_INTERVAL_S:
                    # Lets the socket tell a quiet run from a dead worker.
                    await sender.send_alive()
                    last_alive = time.monotonic()
            await _drain(self.run_id, self.recorder, sender.send)
            if self._final_message is not None:
                await sender.send(self._final_message)
        finally:
            await redis.aclose()
            await sender.close()

    def finish(self, final_message: dict[str, Any] | None) -> None:
        """Flush what is left, send the final message (if any), and end the thread."""
        self._final_message = final_message
        self._stop_requested.set()
        self.join(timeout=10)
