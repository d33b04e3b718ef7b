"""Run records: created when a run is accepted, finished exactly once.

The web process writes them from its event loop (`*_on_loop`, batched); a
Celery worker, which has no loop to spare, through Django's connection.
"""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import DatabaseError, connection
from django.urls import Resolver404, resolve
from django.utils import timezone
from redis.exceptions import RedisError

from coursesite import keys, loop_db
from demos.base import RunCompare, RunOrigin
from demos.embedding import demo_block_marker
from demos.models import Run

logger = logging.getLogger("demos.services")


def runs_cancel(*, run_ids: list[str], summary: dict[str, Any]) -> int:
    """Record every still-running run in `run_ids` as cancelled, in one statement."""
    return Run.objects.filter(id__in=run_ids, status=Run.Status.RUNNING).update(
        status=Run.Status.CANCELLED, summary=summary, finished_at=timezone.now()
    )


def _finish_sql(placeholder: str) -> str:
    """One statement that ends any number of runs, each with its status, summary and (optionally) events.

    The status, summary and end time are written only if the run was still
    running; its events (already encoded as a JSON array, so the web loop can
    encode a large run in slices) whoever ended it, and a run ending without
    events keeps what it has. The row lock in the FROM clause makes the old
    status the one this UPDATE replaces, so "first one wins" holds; `n` tells
    the callers apart when one run is ended twice in a batch (one row wins).
    `placeholder` is "b" to send the arrays in binary, "s" for Django's cursor,
    which binds client-side and cannot.
    """
    return f"""
    UPDATE {Run._meta.db_table} AS run SET
        status = CASE WHEN before.status = %(running)s THEN ending.status ELSE run.status END,
        summary = CASE WHEN before.status = %(running)s THEN ending.summary ELSE run.summary END,
        finished_at = CASE WHEN before.status = %(running)s THEN ending.finished_at ELSE run.finished_at END,
        events = COALESCE(ending.events, run.events),
        events_dropped = COALESCE(ending.dropped, run.events_dropped)
    FROM unnest(%(ids){placeholder}::uuid[], %(statuses){placeholder}::text[], %(summaries){placeholder}::jsonb[],
                %(finished){placeholder}::timestamptz[], %(events){placeholder}::jsonb[], %(dropped){placeholder}::int[])
         WITH ORDINALITY AS ending(id, status, summary, finished_at, events, dropped, n)
    JOIN (SELECT id, status FROM {Run._meta.db_table} WHERE id = ANY(%(ids){placeholder}::uuid[]) FOR UPDATE) AS before
      ON before.id = ending.id
    WHERE run.id = ending.id
    RETURNING ending.n, before.status
    """


FINISH_MANY_SQL = _finish_sql("b")
FINISH_ONE_SQL = _finish_sql("s")


def _finish_params(endings: list[tuple]) -> dict[str, Any]:
    """Endings are (run id, status, summary JSON, events JSON or None, dropped or None)."""
    ids, statuses, summaries, events, dropped = zip(*endings, strict=True)
    return {"running": Run.Status.RUNNING, "ids": list(ids), "statuses": list(statuses), "summaries": list(summaries),
            "finished": [timezone.now()] * len(endings), "events": list(events), "dropped": list(dropped)}


def _ended_now(rows: list[tuple], count: int) -> list[bool]:
    """For each of `count` endings, whether it was the one that ended its run."""
    ended = {n for n, old_status in rows if old_status == Run.Status.RUNNING}
    return [n in ended for n in range(1, count + 1)]


def run_finish_with_events(*, run_id: str, status: str, summary: dict[str, Any], events_json: str, dropped: int) -> bool:
    """Record how a run ended and keep its events for replay; False if it had already ended (see `_finish_sql`).

    For a Celery worker, through Django's connection.
    """
    with connection.cursor() as cursor:
        cursor.execute(FINISH_ONE_SQL, _finish_params([(run_id, status, json.dumps(summary), events_json, dropped)]))
        return _ended_now(cursor.fetchall(), 1)[0]


# The same records written from the web process's event loop, without a thread
# hop per statement (coursesite/loop_db.py says why), and batched: the runs
# that start or end while one statement is in flight are written together by
# the next. They raise loop_db.DatabaseUnavailable when PostgreSQL cannot be reached.

CREATE_MANY_SQL = f"""
    INSERT INTO {Run._meta.db_table} (id, demo, placement, params, status, summary, events, events_dropped, created_at,
                                      compare_group, compare_side, origin_lesson_id, origin_block)
    SELECT id, demo, placement, params, %s, '{{}}', '[]', 0, created_at, compare_group, compare_side, origin_lesson_id,
           origin_block
    FROM unnest(%b::uuid[], %b::text[], %b::text[], %b::jsonb[], %b::timestamptz[], %b::uuid[], %b::text[], %b::bigint[],
                %b::int[])
         AS new(id, demo, placement, params, created_at, compare_group, compare_side, origin_lesson_id, origin_block)
"""


async def _create_runs(rows: list[tuple]) -> list[None]:
    columns = [list(column) for column in zip(*rows, strict=True)]
    await loop_db.fetch_all(CREATE_MANY_SQL, (Run.Status.RUNNING, *columns))
    return [None] * len(rows)


async def _finish_runs(endings: list[tuple]) -> list[bool]:
    return _ended_now(await loop_db.fetch_all(FINISH_MANY_SQL, _finish_params(endings)), len(endings))


_create_batched = loop_db.Batched(_create_runs)
_finish_batched = loop_db.Batched(_finish_runs)


async def run_create_on_loop(*, demo_slug: str, placement: str, params: dict[str, Any],
                            compare: RunCompare | None = None, origin: RunOrigin | None = None) -> str:
    """Record a run as running; its id.

    `compare` ties it to the other side of a side-by-side compare; `origin`
    (the lesson page and demo block it was started from) is kept only if
    that lesson exists and its block N embeds this demo, else dropped.
    """
    run_id = uuid.uuid4()
    lesson_id = await origin_lesson_on_loop(origin=origin, demo_slug=demo_slug) if origin is not None else None
    await _create_batched((
        run_id, demo_slug, placement, json.dumps(params), timezone.now(),
        uuid.UUID(compare["group"]) if compare else None, compare["side"] if compare else "",
        lesson_id, origin["block"] if origin is not None and lesson_id is not None else None,
    ))
    return str(run_id)


def _lesson_sql() -> str:
    from lessons.models import Course, Lesson

    return (f"SELECT lesson.id FROM {Lesson._meta.db_table} AS lesson "
            f"JOIN {Course._meta.db_table} AS course ON course.id = lesson.course_id "
            "WHERE course.slug = %s AND lesson.slug = %s AND strpos(lesson.body_html, %s) > 0")


async def origin_lesson_on_loop(*, origin: RunOrigin, demo_slug: str) -> int | None:
    """The id of the lesson at `origin["path"]` if its demo block number `origin["block"]` embeds this demo, else None.

    The path is resolved with the site's own URLs, so only a lesson page
    counts; the block is found by the anchor the renderer gives it
    (demos.embedding.demo_block_marker).
    """
    try:
        match = resolve(origin["path"])
    except Resolver404:
        return None
    if match.view_name != "lessons:lesson":
        return None
    marker = demo_block_marker(block=origin["block"], slug=demo_slug)
    rows = await loop_db.fetch_all(_lesson_sql(), (match.kwargs["course_slug"], match.kwargs["lesson_slug"], marker))
    return int(rows[0][0]) if rows else None


async def run_finish_on_loop(*, run_id: str, status: str, summary: dict[str, Any]) -> bool:
    """Record how a run ended; False if it had already ended.

    A cancel from the socket and the end of the run itself may race: the
    first one wins, and the other is told it lost.
    """
    return await _finish_batched((run_id, status, json.dumps(summary), None, None))


async def run_finish_with_events_on_loop(*, run_id: str, status: str, summary: dict[str, Any], events_json: str,
                                         dropped: int) -> bool:
    """As `run_finish_on_loop`, keeping the run's events for replay (see `_finish_sql`)."""
    return await _finish_batched((run_id, status, json.dumps(summary), events_json, dropped))


READ_ENDING_SQL = f"SELECT status, summary FROM {Run._meta.db_table} WHERE id = %s::uuid"


async def run_ending_on_loop(*, run_id: str) -> tuple[str, dict[str, Any]] | None:
    """The stored status and summary of a run that has ended; None while it is still running (or unknown).

    The socket asks when its own ending of a worker run lost to one the
    worker had already written, so the reader is told what the record says.
    """
    rows = await loop_db.fetch_all(READ_ENDING_SQL, (run_id,))
    if not rows or rows[0][0] == Run.Status.RUNNING:
        return None
    status, summary = rows[0]
    return status, summary if isinstance(summary, dict) else json.loads(summary)


# Endings PostgreSQL refused, by run id: (status, summary JSON, events JSON or None, dropped or None).
# The reader has already been told the ending; these tasks make the record say the same once
# PostgreSQL is back (docs/adr/0010-run-endings-retried-until-postgres-returns.md).
_endings_pending: dict[str, tuple[str, str, str | None, int | None]] = {}
_retry_tasks: set[asyncio.Task] = set()


def run_finish_later(*, run_id: str, status: str, summary: dict[str, Any], events_json: str | None = None,
                     dropped: int | None = None) -> None:
    """Write a run's ending in the background, retrying with backoff until PostgreSQL takes it.

    Called on the event loop when `run_finish_*_on_loop` raised DatabaseUnavailable;
    returns at once, so neither the loop nor the socket waits for the database.
    """
    ending = (status, json.dumps(summary), events_json, dropped)
    _endings_pending[run_id] = ending
    task = asyncio.get_running_loop().create_task(_retry_ending(run_id, ending))
    _retry_tasks.add(task)
    task.add_done_callback(_retry_tasks.discard)


def run_endings_pending() -> list[str]:
    """Ids of the runs whose ending is still waiting for PostgreSQL in this process."""
    return list(_endings_pending)


async def _retry_ending(run_id: str, ending: tuple[str, str, str | None, int | None]) -> None:
    max_delay = float(settings.DEMO_END_RETRY_MAX_DELAY_S)
    delay = 0.5
    try:
        while True:
            await _mark_pending(run_id, ttl_s=int(3 * max_delay) + 1)
            await asyncio.sleep(delay)
            try:
                await _finish_batched((run_id, *ending))
            except loop_db.DatabaseUnavailable:
                delay = min(delay * 2, max_delay)
                continue
            except Exception:
                logger.exception("gave up recording the end of run %s", run_id)
            else:
                logger.info("recorded the end of run %s once the database was back", run_id)
            break
    finally:
        _endings_pending.pop(run_id, None)
    await _mark_pending(run_id, ttl_s=0)


async def _mark_pending(run_id: str, *, ttl_s: int) -> None:
    """Hold (or, with ttl_s=0, drop) the key that keeps the sweeper off this run; Redis down is survivable."""
    from coursesite.redis_clients import async_redis

    try:
        if ttl_s:
            await async_redis().set(keys.run_ending_pending(run_id), 1, ex=ttl_s)
        else:
            await async_redis().delete(keys.run_ending_pending(run_id))
    except RedisError:
        logger.debug("could not mark the ending of run %s as pending", run_id)


def run_endings_write_now() -> int:
    """One synchronous try at every pending ending (the process is exiting); how many were written.

    For a thread without an event loop: it uses Django's connection.
    """
    written = 0
    for run_id, (status, summary_json, events_json, dropped) in list(_endings_pending.items()):
        try:
            with connection.cursor() as cursor:
                cursor.execute(FINISH_ONE_SQL, _finish_params([(run_id, status, summary_json, events_json, dropped)]))
        except DatabaseError:
            logger.warning("the end of run %s was not recorded before exit; the sweeper marks it", run_id)
            continue
        _endings_pending.pop(run_id, None)
        written += 1
    return written


def run_sweep_stale(*, older_than: timedelta) -> int:
    """Mark runs still 'running' long after any time limit as failed; return how many.

    A run whose ending a web process is still retrying (its `run_ending_pending`
    key is present) is left alone: the ending the reader saw is about to be
    written. If Redis cannot say, nothing is swept this time; the next sweep will.
    """
    from coursesite.redis_clients import sync_redis

    cutoff = timezone.now() - older_than
    stale = list(Run.objects.filter(status=Run.Status.RUNNING, created_at__lt=cutoff).values_list("id", flat=True))
    if not stale:
        return 0
    try:
        held = sync_redis().mget([keys.run_ending_pending(str(run_id)) for run_id in stale])
    except RedisError:
        logger.warning("the sweep is skipped: Redis cannot say which run endings are still being retried")
        return 0
    sweepable = [run_id for run_id, pending in zip(stale, held, strict=True) if pending is None]
    return Run.objects.filter(id__in=sweepable, status=Run.Status.RUNNING).update(
        status=Run.Status.FAILED,
        summary={"text": "This run was interrupted (the server stopped) and never finished."},
        finished_at=timezone.now(),
    )
