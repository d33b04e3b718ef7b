"""Celery with the default worker: enqueue-to-start latency and jobs per second for tiny jobs."""
from __future__ import annotations

import os
import time


def measure(site, *, jobs: int) -> dict:
    os.environ.update(site.services)
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coursesite.settings.dev")
    import django

    django.setup()
    from demos.tasks import worker_clock

    # Warm the connection pools so the first job does not pay for them.
    worker_clock.delay(time.time()).get(timeout=30)
    started = time.time()
    results = [worker_clock.delay(time.time()) for _ in range(jobs)]
    replies = [result.get(timeout=120) for result in results]
    finished = time.time()
    latencies = sorted((reply["started_at"] - reply["enqueued_at"]) * 1000 for reply in replies)

    def pick(quantile: float) -> float:
        """The enqueue-to-start latency at this quantile of the jobs sent."""
        return round(latencies[min(len(latencies) - 1, int(quantile * len(latencies)))], 2)

    return {"jobs": jobs, "start_latency_p50_ms": pick(0.5), "start_latency_p99_ms": pick(0.99),
            "jobs_per_s": round(jobs / (finished - started), 1)}
