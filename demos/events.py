"""Collecting a run's events and cutting them into numbered batches.

Demos call the recorder as `emit(kind, **fields)`; it stamps `t`, keeps a copy
for the run record (up to MAX_STORED_EVENTS) and queues the event for the next
batch. A pump sends at most one batch every DEMO_BATCH_INTERVAL_S (settings), which caps a run
at about 20 messages a second however many events it makes, and sends a
lone event at once.
"""
from __future__ import annotations

import asyncio
import json
import threading
import time
from typing import Any
from collections.abc import Callable

from demos.models import MAX_STORED_EVENTS

# Encoding one enormous batch would stall the loop that sends it; a burst of
# 10,000 events goes out as a few batches over a few ticks instead.
MAX_BATCH_EVENTS = 2_500


class EventRecorder:
    """Thread-safe: worker demos may emit from several threads at once.

    `on_pending` is called (in the emitting thread) when the first event
    arrives after the pending list was emptied, so a pump can sleep until
    there is something to send instead of polling.
    """

    def __init__(self, on_pending: Callable[[], None] | None = None) -> None:
        self.on_pending = on_pending
        self.started = time.perf_counter()
        # The same instant on the wall clock, sent with each batch: a client on a
        # synchronised clock can then tell how long each event took to reach it.
        self.started_at = round(time.time(), 4)
        self.stored: list[dict[str, Any]] = []
        self.dropped = 0
        self._pending: list[dict[str, Any]] = []
        self._next_seq = 0
        self._lock = threading.Lock()

    def elapsed_ms(self) -> float:
        return (time.perf_counter() - self.started) * 1000

    def __call__(self, kind: str, **fields: Any) -> float:
        t = fields.pop("t", None)
        if t is None:
            t = self.elapsed_ms()
        event = {"t": round(t, 2), "kind": kind, **fields}
        with self._lock:
            was_empty = not self._pending
            self._pending.append(event)
            if len(self.stored) < MAX_STORED_EVENTS:
                self.stored.append(event)
            else:
                self.dropped += 1
        if was_empty and self.on_pending is not None:
            self.on_pending()
        return t

    def take_batch(self) -> tuple[int, list[dict[str, Any]]] | None:
        """The next (seq, events), or None when nothing is pending."""
        with self._lock:
            if not self._pending:
                return None
            batch, self._pending = self._pending[:MAX_BATCH_EVENTS], self._pending[MAX_BATCH_EVENTS:]
            seq = self._next_seq
            self._next_seq += 1
        return seq, batch

    def has_pending(self) -> bool:
        with self._lock:
            return bool(self._pending)


ENCODE_SLICE = 500


def encode_events(events: list[dict[str, Any]]) -> str:
    """The events as one JSON array (for worker processes, where blocking is fine)."""
    return json.dumps(events, separators=(",", ":"))


async def encode_events_cooperatively(events: list[dict[str, Any]]) -> str:
    """The same JSON, encoded a slice at a time so the event loop keeps ticking."""
    parts = []
    for start in range(0, len(events), ENCODE_SLICE):
        parts.append(json.dumps(events[start:start + ENCODE_SLICE], separators=(",", ":"))[1:-1])
        await asyncio.sleep(0)
    return "[" + ",".join(part for part in parts if part) + "]"
