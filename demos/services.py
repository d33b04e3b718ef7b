"""Run records: created when a run is accepted, finished exactly once.

The web process writes them from its event loop (`*_on_loop`, batched); a
Celery worker, which has no loop to spare, through Django's connection.
"""
from __future__ import annotations

import json
import uuid
from datetime import timedelta
from typing import Any

from django.db import connection
from django.utils import timezone

from coursesite import loop_db
from demos.models import Run


def runs_cancel(*, run_ids: list[str], summary: dict[str, Any]) -> int:
    """Record every still-running run in `run_ids` as cancelled, in one statement."""
    return Run.objects.filter(id__in=run_ids, status=Run.Status.RUNNING).update(
        status=Run.Status.CANCELLED, summary=summary, finished_at=timezone.now()
    )


FINISH_WITH_EVENTS_SQL = f"""
    UPDATE {Run._meta.db_table} AS run SET
        status = CASE WHEN before.status = %(running)s THEN %(status)s ELSE run.status END,
        summary = CASE WHEN before.status = %(running)s THEN %(summary)s::jsonb ELSE run.summary END,
        finished_at = CASE WHEN before.status = %(running)s THEN %(now)s ELSE run.finished_at END,
        events = %(events)s::jsonb,
        events_dropped = %(dropped)s
    FROM (SELECT id, status FROM {Run._meta.db_table} WHERE id = %(id)s FOR UPDATE) AS before
    WHERE run.id = before.id
    RETURNING before.status
"""


def run_finish_with_events(*, run_id: str, status: str, summary: dict[str, Any], events_json: str, dropped: int) -> bool:
    """Record how a run ended and keep its events for replay, in one statement; False if it had already ended.

    The events (already encoded as a JSON array, so the web loop can encode a
    large run in slices) are stored whoever ended the run; the status, summary
    and end time only if it was still running. The row lock in the FROM clause makes
    the old status the one this UPDATE replaces, so "first one wins" holds.
    """
    with connection.cursor() as cursor:
        cursor.execute(FINISH_WITH_EVENTS_SQL, {
            "running": Run.Status.RUNNING, "status": status, "summary": json.dumps(summary), "now": timezone.now(),
            "events": events_json, "dropped": dropped, "id": run_id,
        })
        row = cursor.fetchone()
    return row is not None and row[0] == Run.Status.RUNNING


# The same records written from the web process's event loop, without a thread
# hop per statement (coursesite/loop_db.py says why), and batched: the runs
# that start or end while one statement is in flight are written together by
# the next. They raise loop_db.DatabaseUnavailable when PostgreSQL cannot be reached.

CREATE_MANY_SQL = f"""
    INSERT INTO {Run._meta.db_table} (id, demo, placement, params, status, summary, events, events_dropped, created_at)
    SELECT id, demo, placement, params, %s, '{{}}', '[]', 0, created_at
    FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::jsonb[], %b::timestamptz[]) AS new(id, demo, placement, params, created_at)
"""
# As FINISH_WITH_EVENTS_SQL for many runs; a run without events keeps what it has.
# `n` tells the callers apart: if one run is ended twice in a batch, one row wins.
FINISH_MANY_SQL = f"""
    UPDATE {Run._meta.db_table} AS run SET
        status = CASE WHEN before.status = %(running)s THEN ending.status ELSE run.status END,
        summary = CASE WHEN before.status = %(running)s THEN ending.summary ELSE run.summary END,
        finished_at = CASE WHEN before.status = %(running)s THEN ending.finished_at ELSE run.finished_at END,
        events = COALESCE(ending.events, run.events),
        events_dropped = COALESCE(ending.dropped, run.events_dropped)
    FROM unnest(%(ids)b::uuid[], %(statuses)b::text[], %(summaries)b::jsonb[], %(finished)b::timestamptz[],
                %(events)b::jsonb[], %(dropped)b::int[]) WITH ORDINALITY AS ending(id, status, summary, finished_at, events, dropped, n)
    JOIN (SELECT id, status FROM {Run._meta.db_table} WHERE id = ANY(%(ids)b::uuid[]) FOR UPDATE) AS before ON before.id = ending.id
    WHERE run.id = ending.id
    RETURNING ending.n, before.status
"""


async def _create_runs(rows: list[tuple]) -> list[None]:
    ids, demos, placements, params, created = zip(*rows)
    await loop_db.fetch_all(CREATE_MANY_SQL, (Run.Status.RUNNING, list(ids), list(demos), list(placements), list(params), list(created)))
    return [None] * len(rows)


async def _finish_runs(endings: list[tuple]) -> list[bool]:
    ids, statuses, summaries, events, dropped = zip(*endings)
    now = timezone.now()
    cursor_rows = await loop_db.fetch_all(FINISH_MANY_SQL, {
        "running": Run.Status.RUNNING, "ids": list(ids), "statuses": list(statuses), "summaries": list(summaries),
        "finished": [now] * len(endings), "events": list(events), "dropped": list(dropped),
    })
    ended_now = {n for n, old_status in cursor_rows if old_status == Run.Status.RUNNING}
    return [index in ended_now for index in range(1, len(endings) + 1)]


_create_batched = loop_db.Batched(_create_runs)
_finish_batched = loop_db.Batched(_finish_runs)


async def run_create_on_loop(*, demo_slug: str, placement: str, params: dict[str, Any]) -> str:
    """Record a run as running; its id."""
    run_id = uuid.uuid4()
    await _create_batched((run_id, demo_slug, placement, json.dumps(params), timezone.now()))
    return str(run_id)


async def run_finish_on_loop(*, run_id: str, status: str, summary: dict[str, Any]) -> bool:
    """Record how a run ended; False if it had already ended.

    A cancel from the socket and the end of the run itself may race: the
    first one wins, and the other is told it lost.
    """
    return await _finish_batched((run_id, status, json.dumps(summary), None, None))


async def run_finish_with_events_on_loop(*, run_id: str, status: str, summary: dict[str, Any], events_json: str, dropped: int) -> bool:
    """As `run_finish_on_loop`, keeping the run's events for replay (see `run_finish_with_events`)."""
    return await _finish_batched((run_id, status, json.dumps(summary), events_json, dropped))


def run_sweep_stale(*, older_than: timedelta) -> int:
    """Mark runs still 'running' long after any time limit as failed; return how many."""
    cutoff = timezone.now() - older_than
    return Run.objects.filter(status=Run.Status.RUNNING, created_at__lt=cutoff).update(
        status=Run.Status.FAILED,
        summary={"text": "This run was interrupted (the server stopped) and never finished."},
        finished_at=timezone.now(),
    )
