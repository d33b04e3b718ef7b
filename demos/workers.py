"""Whether any Celery worker is alive, asked cheaply and cached briefly."""
from __future__ import annotations

import asyncio
import time

from coursesite.celery import app as celery_app

_CACHE_S = 5.0
_last_seen_alive = 0.0


def _ping() -> bool:
    try:
        return bool(celery_app.control.ping(timeout=0.5))
    except Exception:  # broker down counts as no worker
        return False


async def available() -> bool:
    """True when a worker answered a ping in the last few seconds."""
    global _last_seen_alive
    if time.monotonic() - _last_seen_alive < _CACHE_S:
        return True
    alive = await asyncio.to_thread(_ping)
    if alive:
        _last_seen_alive = time.monotonic()
    return alive
