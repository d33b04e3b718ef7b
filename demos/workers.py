"""Whether a Celery worker that runs demos is alive, asked cheaply and cached briefly."""
from __future__ import annotations

import asyncio
import time

from coursesite.celery import app as celery_app

_CACHE_S = 5.0
_last_seen_alive = 0.0


def _demo_queue_is_served() -> bool:
    """True when some live worker consumes the queue demo runs are sent to.

    Asking for queues, not a bare ping: a worker that only serves another
    queue (a worker for one demo's own job queue) cannot run a demo.
    """
    demo_queue = celery_app.conf.task_default_queue
    # Two short tries: a worker that has just (re)started can miss the first.
    for timeout in (0.5, 1.0):
        try:
            replies = celery_app.control.inspect(timeout=timeout).active_queues() or {}
        except Exception:  # broker down counts as no worker
            return False
        if any(queue.get("name") == demo_queue for queues in replies.values() for queue in queues or []):
            return True
    return False


async def available() -> bool:
    """True when a demo worker answered in the last few seconds."""
    global _last_seen_alive
    if time.monotonic() - _last_seen_alive < _CACHE_S:
        return True
    alive = await asyncio.to_thread(_demo_queue_is_served)
    if alive:
        _last_seen_alive = time.monotonic()
    return alive
