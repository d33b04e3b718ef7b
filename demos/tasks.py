"""Celery tasks of the engine: thin interfaces that run a worker-placed demo and report back.

Demo packages keep their own tasks (a `tasks.py` of theirs, autodiscovered);
these are the engine's only ones.
"""
from __future__ import annotations

import time
from datetime import timedelta

from celery import shared_task

from demos.registry import DEMOS, get_demo
from demos.supervisor import run_in_worker


@shared_task(name="demos.run_worker_demo", ignore_result=True)
def run_worker_demo(run_id: str, demo_slug: str, params: dict, queued_since: float | None = None) -> str:
    """Run one worker-placed demo, streaming its events through the channel layer (`queued_since`: see run_in_worker)."""
    demo = get_demo(demo_slug)
    if demo is None:  # a queued run whose demo a deploy removed
        raise LookupError(f"no demo called {demo_slug!r}")
    return run_in_worker(run_id=run_id, demo=demo, params=params, queued_since=queued_since)


@shared_task(name="demos.worker_clock")
def worker_clock(enqueued_at: float) -> dict:
    """Report when a worker started this job; the benchmarks measure queue latency with it."""
    return {"enqueued_at": enqueued_at, "started_at": time.time()}


@shared_task(name="demos.sweep_stale_runs", ignore_result=True)
def sweep_stale_runs() -> int:
    """Mark runs a crashed process left 'running' as failed (scheduled by beat every minute).

    Runs whose ending a web process is still retrying are skipped
    (docs/adr/0010-run-endings-retried-until-postgres-returns.md).
    """
    from demos.services import run_sweep_stale

    longest = max((demo.time_limit_s for demo in DEMOS.values()), default=60)
    return run_sweep_stale(older_than=timedelta(seconds=longest + 30))
