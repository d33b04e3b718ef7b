"""Course content services: loading the shipped course, and the reader-page cache version."""
from __future__ import annotations

import asyncio
import logging
import time
import tomllib
import weakref
from dataclasses import dataclass
from pathlib import Path

from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import transaction
from redis.exceptions import RedisError

from lessons.models import Course, Lesson

logger = logging.getLogger("lessons.services")

CONTENT_DIR = Path(__file__).resolve().parent / "content"


@dataclass
class LoadReport:
    created: int = 0
    updated: int = 0
    kept: int = 0


# What a cache backed by Redis raises when Redis cannot be reached.
CACHE_ERRORS = (RedisError, OSError)

CONTENT_VERSION_KEY = "lessons:content-version"
# Each process remembers the version this long: one Redis round trip per page
# instead of two, at the price of other processes seeing an edit up to a second late.
VERSION_MEMO_S = 1.0


@dataclass
class _VersionMemo:
    """The content version this process last read from Redis, and when (time.monotonic())."""

    value: int | None = None
    read_at: float = 0.0


_version_memo = _VersionMemo()


def _remembered_version() -> int | None:
    if _version_memo.value is not None and time.monotonic() - _version_memo.read_at < VERSION_MEMO_S:
        return _version_memo.value
    return None


def _remember_version(version: int) -> int:
    _version_memo.value, _version_memo.read_at = version, time.monotonic()
    return version


def content_version() -> int:
    """A number that changes whenever any course or lesson changes."""
    version = _remembered_version()
    if version is not None:
        return version
    version = cache.get(CONTENT_VERSION_KEY)
    if version is None:
        cache.add(CONTENT_VERSION_KEY, 1, timeout=None)
        version = cache.get(CONTENT_VERSION_KEY, 1)
    return _remember_version(version)


# The read of the version under way on each event loop, which every request arriving meanwhile awaits.
_version_reads: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Task[int]] = weakref.WeakKeyDictionary()


def _version_read_done(loop: asyncio.AbstractEventLoop, read: asyncio.Task[int]) -> None:
    _version_reads.pop(loop, None)
    if not read.cancelled():
        read.exception()  # seen here, so a failure whose every awaiter has gone is not logged as unretrieved


async def acontent_version() -> int:
    """`content_version` for async callers: Redis is asked at most once a second, off the loop.

    When the remembered version expires, the requests that arrive before Redis has answered
    share one read (at a few hundred pages a second each would otherwise make its own).
    """
    version = _remembered_version()
    if version is not None:
        return version
    loop = asyncio.get_running_loop()
    read = _version_reads.get(loop)
    if read is None:
        # Not tied to the request that started it (a shared worker thread, not the request's),
        # so a reader who disconnects does not cancel the others' read.
        read = loop.create_task(sync_to_async(content_version, thread_sensitive=False)())
        _version_reads[loop] = read
        read.add_done_callback(lambda done: _version_read_done(loop, done))
    return _remember_version(await asyncio.shield(read))


def content_changed() -> None:
    """Invalidate every cached reader page (prev/next links make them depend on each other)."""
    _version_memo.value = None
    try:
        cache.incr(CONTENT_VERSION_KEY)
    except ValueError:  # not set yet: nothing cached under a version
        cache.add(CONTENT_VERSION_KEY, 2, timeout=None)
    except (RedisError, OSError):
        # Redis down: nothing can be served from the cache either; pages may be
        # stale for up to their TTL once it returns.
        logger.warning("could not invalidate cached lesson pages")


def reader_page_key(*, path: str) -> str:
    """Where an anonymous reader's copy of a page is cached, for the current content."""
    return f"lessons:page:{content_version()}:{path}"


async def areader_page_key(*, path: str) -> str:
    return f"lessons:page:{await acontent_version()}:{path}"


@transaction.atomic
def course_load(*, directory: Path, refresh: bool = False) -> LoadReport:
    """Create the course in `directory` (course.toml + Markdown files) where missing.

    Lessons that already exist are kept as authors left them, unless `refresh`
    asks to overwrite them with the shipped text.
    """
    spec = tomllib.loads((directory / "course.toml").read_text())
    course, _ = Course.objects.get_or_create(
        slug=spec["slug"], defaults={"title": spec["title"], "summary": spec.get("summary", "")}
    )
    report = LoadReport()
    for position, entry in enumerate(spec["lessons"], start=1):
        body = (directory / entry["file"]).read_text()
        lesson = Lesson.objects.filter(course=course, slug=entry["slug"]).first()
        if lesson is not None and not refresh:
            report.kept += 1
            continue
        if lesson is None:
            lesson = Lesson(course=course, slug=entry["slug"])
            report.created += 1
        else:
            report.updated += 1
        lesson.title = entry["title"]
        lesson.summary = entry.get("summary", "")
        lesson.kind = entry.get("kind", Lesson.Kind.LESSON)
        lesson.position = position * 10  # gaps leave room for authors to slot lessons in
        lesson.body = body
        lesson.published = True
        lesson.full_clean()
        lesson.save()
    return report


def lessons_rerender() -> list[str]:
    """Render every stored lesson again with today's renderer (a renderer change reaches old lessons too).

    A lesson whose Markdown today's rules reject keeps its old HTML; its title and the reason come back,
    for `load_course` to print, so an author can fix it in the admin.
    """
    from lessons.rendering import LessonRenderError, render_lesson_markdown

    problems = []
    for lesson in Lesson.objects.all():
        try:
            rendered = render_lesson_markdown(lesson.body)
        except LessonRenderError as error:
            problems.append(f"{lesson.title}: {error}")
            continue
        if (rendered.html, rendered.toc, rendered.blocks) != (lesson.body_html, lesson.toc, lesson.blocks):
            Lesson.objects.filter(pk=lesson.pk).update(body_html=rendered.html, toc=rendered.toc, blocks=rendered.blocks)
    return problems


def shipped_courses() -> list[Path]:
    """Every course folder shipped with the site."""
    return sorted(path for path in CONTENT_DIR.iterdir() if (path / "course.toml").exists())
