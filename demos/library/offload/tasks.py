"""The CPU-bound job of the `offload` demo, and the Celery task that runs it.

The same job body runs in two places: inside a request of the demo's sandbox
web server (inline), or in a Celery worker process fed from the `offload-jobs`
queue. Either way it hashes a generated password with PBKDF2 in small steps and
reports each step to a Redis list keyed by the run, which the demo reads and
turns into the run's events (the demo owns the run's event numbering, so the
job never talks to the channel layer itself).

Delivery settings of the task, chosen for "at most once" (see lesson 07):
`acks_late=False` acknowledges the message as a pool process takes the job, so
a worker killed mid-job does not get the job handed out again;
`reject_on_worker_lost=False` says the same for the case where late acks are
ever switched on. There are no retries: a failure is shown, not hidden.
"""
from __future__ import annotations

import hashlib
import json
import os
import signal
import time
from typing import Any

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded

from coursesite import keys
from coursesite.redis_clients import sync_redis

SLUG = "offload"  # the demo's slug (the package's __init__ imports this module, so it cannot import that)
JOBS_QUEUE = "offload-jobs"
STEPS = 20  # progress reports per job
KEY_TTL_S = 600
RUNAWAY_FACTOR = 50  # how much bigger than declared the `timeout` job's input turns out
SOFT_LIMIT_CEILING_S = 20
HARD_LIMIT_CEILING_S = 25
FAILURES = ("none", "raise", "timeout", "kill-worker")

_iterations_per_cpu_ms: float | None = None


def time_limits(job_ms: int) -> tuple[float, float]:
    """Soft and hard limits for one job: room for a busy machine, short for a runaway.

    Limits are wall-clock time, and a job sharing its cores may take several
    times its CPU cost; the `timeout` failure wants 50 times it.
    """
    soft = job_ms * 8 / 1000 + 2
    return soft, soft + 2


def reports_key(run_key: str) -> str:
    """The Redis list a run's jobs push their reports to, oldest first."""
    return keys.demo_key(SLUG, run_key, "reports")


def starts_key(job_id: str) -> str:
    """A Redis counter: how many times this job started (more than once means it ran twice)."""
    return keys.demo_key(SLUG, "job", job_id, "starts")


def open_key(run_key: str) -> str:
    """Present while the run still wants its jobs; a job finding it gone stops."""
    return keys.demo_key(SLUG, run_key, "open")


def iterations_per_cpu_ms() -> float:
    """PBKDF2 iterations this process does per millisecond of CPU time, measured once.

    CPU time rather than wall time, so a busy machine does not shrink the job:
    inline or queued, a job is the same amount of work.
    """
    global _iterations_per_cpu_ms
    if _iterations_per_cpu_ms is None:
        iterations, started = 0, time.process_time()
        while time.process_time() - started < 0.02:
            hashlib.pbkdf2_hmac("sha256", b"calibration", b"salt", 2_000)
            iterations += 2_000
        _iterations_per_cpu_ms = iterations / ((time.process_time() - started) * 1000)
    return _iterations_per_cpu_ms


def _report(run_key: str, message: dict[str, Any]) -> bool:
    """Push one report; True while the run still wants this job."""
    pipe = sync_redis().pipeline(transaction=False)
    pipe.rpush(reports_key(run_key), json.dumps({**message, "at": time.time()}))
    pipe.expire(reports_key(run_key), KEY_TTL_S)
    pipe.exists(open_key(run_key))
    return bool(pipe.execute()[2])


def hash_job(*, job_id: str, run_key: str, job_ms: int, worker: str, failure: str = "none") -> dict[str, Any]:
    """Hash a generated password with PBKDF2 for about `job_ms` of CPU, reporting each step.

    `failure` makes the job go wrong on purpose halfway: `raise` raises,
    `timeout` turns out to need far more work than declared (so only its time
    limit stops it), `kill-worker` kills the process running it.
    """
    client = sync_redis()
    # Counted before anything else, so a second run of the job shows even after its run is over.
    client.incr(starts_key(job_id))
    client.expire(starts_key(job_id), KEY_TTL_S)
    if not client.exists(open_key(run_key)):
        return {"job_id": job_id, "skipped": True}  # its run is over: nobody is waiting for the result
    _report(run_key, {"type": "started", "job": job_id, "worker": worker, "pid": os.getpid()})
    work_factor = RUNAWAY_FACTOR if failure == "timeout" else 1
    step_iterations = max(1, round(iterations_per_cpu_ms() * job_ms * work_factor / STEPS))
    digest = hashlib.sha256(f"password-{job_id}".encode()).digest()
    salt = job_id.encode()
    started, cpu_started = time.perf_counter(), time.process_time()
    try:
        for step in range(1, STEPS + 1):
            if step == STEPS // 2 + 1 and failure == "raise":
                raise ValueError("the password store rejected this hash (failure=raise)")
            if step == STEPS // 2 + 1 and failure == "kill-worker":
                os.kill(os.getpid(), signal.SIGKILL)  # as the out-of-memory killer would
            digest = hashlib.pbkdf2_hmac("sha256", digest, salt, step_iterations)
            if not _report(run_key, {"type": "progress", "job": job_id, "done": step, "total": STEPS}):
                return {"job_id": job_id, "abandoned": True}
    except SoftTimeLimitExceeded:
        _report(run_key, {"type": "timed_out", "job": job_id, "wall_ms": (time.perf_counter() - started) * 1000})
        raise
    except Exception as error:
        _report(run_key, {"type": "failed", "job": job_id, "error": f"{error.__class__.__name__}: {error}"})
        raise
    wall_ms = (time.perf_counter() - started) * 1000
    cpu_ms = (time.process_time() - cpu_started) * 1000
    _report(run_key, {"type": "finished", "job": job_id, "wall_ms": wall_ms, "cpu_ms": cpu_ms})
    return {"job_id": job_id, "wall_ms": round(wall_ms, 1), "digest": digest.hex()[:16]}


@shared_task(
    name="demos.offload_job",
    bind=True,
    acks_late=False,
    reject_on_worker_lost=False,
    max_retries=0,
    ignore_result=True,  # success is reported through Redis; the backend keeps failures only
    store_errors_even_if_ignored=True,  # a killed process cannot report, but its pool records WorkerLostError
    soft_time_limit=SOFT_LIMIT_CEILING_S,
    time_limit=HARD_LIMIT_CEILING_S,
)
def offload_job(self, job_id: str, run_key: str, job_ms: int, failure: str = "none") -> dict[str, Any]:
    """Run one `offload` job in this worker process; the result backend keeps its outcome."""
    worker = f"{self.request.hostname} · pid {os.getpid()}"
    return hash_job(job_id=job_id, run_key=run_key, job_ms=job_ms, worker=worker, failure=failure)
