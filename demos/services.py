"""Run records: created when a run is accepted, finished exactly once."""
from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from demos.models import Run


def run_create(*, demo_slug: str, placement: str, params: dict[str, Any]) -> Run:
    """Record a run as running."""
    return Run.objects.create(demo=demo_slug, placement=placement, params=params)


def run_finish(*, run_id: str, status: str, summary: dict[str, Any]) -> bool:
    """Record how a run ended; False if it had already ended.

    A conditional UPDATE, not read-then-write: a cancel from the socket and the
    end of the run itself may race, and the first one wins.
    """
    updated = Run.objects.filter(id=run_id, status=Run.Status.RUNNING).update(
        status=status, summary=summary, finished_at=timezone.now()
    )
    return updated == 1


def runs_cancel(*, run_ids: list[str], summary: dict[str, Any]) -> int:
    """Record every still-running run in `run_ids` as cancelled, in one statement."""
    return Run.objects.filter(id__in=run_ids, status=Run.Status.RUNNING).update(
        status=Run.Status.CANCELLED, summary=summary, finished_at=timezone.now()
    )


def run_finish_with_events(*, run_id: str, status: str, summary: dict[str, Any], events_json: str, dropped: int) -> bool:
    """Record how a run ended and keep its events for replay, in one statement; False if it had already ended.

    The events (already encoded as a JSON array, so the web loop can encode a
    large run in slices) are stored whoever ended the run; the status, summary
    and end time only if it was still running. The row lock in the FROM clause makes
    the old status the one this UPDATE replaces, so "first one wins" holds.
    """
    table = Run._meta.db_table
    running = Run.Status.RUNNING
    with connection.cursor() as cursor:
        cursor.execute(
            f"""
            UPDATE {table} AS run SET
                status = CASE WHEN before.status = %(running)s THEN %(status)s ELSE run.status END,
                summary = CASE WHEN before.status = %(running)s THEN %(summary)s::jsonb ELSE run.summary END,
                finished_at = CASE WHEN before.status = %(running)s THEN %(now)s ELSE run.finished_at END,
                events = %(events)s::jsonb,
                events_dropped = %(dropped)s
            FROM (SELECT id, status FROM {table} WHERE id = %(id)s FOR UPDATE) AS before
            WHERE run.id = before.id
            RETURNING before.status
            """,
            {"running": running, "status": status, "summary": json.dumps(summary), "now": timezone.now(),
             "events": events_json, "dropped": dropped, "id": run_id},
        )
        row = cursor.fetchone()
    return row is not None and row[0] == running


def run_sweep_stale(*, older_than: timedelta) -> int:
    """Mark runs still 'running' long after any time limit as failed; return how many."""
    cutoff = timezone.now() - older_than
    return Run.objects.filter(status=Run.Status.RUNNING, created_at__lt=cutoff).update(
        status=Run.Status.FAILED,
        summary={"text": "This run was interrupted (the server stopped) and never finished."},
        finished_at=timezone.now(),
    )


def in_db_thread(function):
    """Wrap a sync ORM function for async callers, run on a pool of threads.

    channels' default sends every call through one thread; with hundreds of
    readers starting runs at once that single thread becomes the queue.
    Each pool thread keeps its own (health-checked) connection.
    """
    from channels.db import DatabaseSyncToAsync

    return DatabaseSyncToAsync(function, thread_sensitive=False)
