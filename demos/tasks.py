"""Celery tasks: thin interfaces that run a worker-placed demo and report back."""
from __future__ import annotations

import logging
import sys
import threading
import traceback

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from demos.base import RunCancelled, RunTimedOut
from demos.events import EventRecorder, encode_events
from demos.models import Run
from demos.registry import get_demo
from demos.runner import WorkerEmit, WorkerPump, failure_summary
from demos.services import run_finish_with_events

logger = logging.getLogger("demos.tasks")


def thread_stacks() -> str:
    """Every thread's current stack, for the log."""
    names = {thread.ident: thread.name for thread in threading.enumerate()}
    return "\n".join(f"--- thread {names.get(ident, ident)}\n{''.join(traceback.format_stack(frame))}"
                     for ident, frame in sys._current_frames().items())


@shared_task(name="demos.run_worker_demo", ignore_result=True)
def run_worker_demo(run_id: str, demo_slug: str, params: dict) -> str:
    """Run one worker-placed demo, streaming its events through the channel layer."""
    demo = get_demo(demo_slug)
    recorder = EventRecorder()
    pump = WorkerPump(run_id, recorder)
    pump.start()
    try:
        summary = demo.run(params, WorkerEmit(recorder, pump.cancelled, demo.time_limit_s))
        status = Run.Status.SUCCEEDED
    except RunCancelled:
        status = Run.Status.CANCELLED
        summary = {"text": f"Stopped by the reader after {recorder.elapsed_ms():.0f} ms."}
    except (SoftTimeLimitExceeded, RunTimedOut):
        # Where every thread was when the limit struck: a demo that should have ended sooner says why here.
        logger.warning("worker demo %s stopped at its %s s time limit\n%s", demo_slug, demo.time_limit_s,
                       thread_stacks(), exc_info=True)
        status = Run.Status.TIMED_OUT
        summary = {"text": f"Stopped at the {demo.time_limit_s:g} s time limit."}
    except Exception as error:  # reported to the reader as a failed run
        logger.exception("worker demo %s failed", demo_slug)
        status, summary = Run.Status.FAILED, failure_summary(error)
    recorded = run_finish_with_events(run_id=run_id, status=status, summary=summary,
                                      events_json=encode_events(recorder.stored), dropped=recorder.dropped)
    final = {"type": "finished", "run": run_id, "status": status, "summary": summary} if recorded else None
    pump.finish(final)
    return status


@shared_task(name="demos.worker_clock")
def worker_clock(enqueued_at: float) -> dict:
    """Report when a worker started this job; the benchmarks measure queue latency with it."""
    import time

    return {"enqueued_at": enqueued_at, "started_at": time.time()}


@shared_task(name="demos.sweep_stale_runs", ignore_result=True)
def sweep_stale_runs() -> int:
    """Mark runs a crashed process left 'running' as failed (scheduled by beat every minute)."""
    from datetime import timedelta

    from demos.registry import DEMOS
    from demos.services import run_sweep_stale

    longest = max((demo.time_limit_s for demo in DEMOS.values()), default=60)
    return run_sweep_stale(older_than=timedelta(seconds=longest + 30))
