"""Django's ASGI handler, with the request threads kept between requests.

Django runs each HTTP request inside its own asgiref ThreadSensitiveContext, so
the request's synchronous code (a sync view, and the sync receivers of
request_started and request_finished that every request fires) gets a thread
of its own. asgiref makes that thread when the request first needs it and,
when the request ends, starts a second thread only to join the first. Two
thread starts per request, and `Thread.start` blocks the event loop until the
new thread has run: on a busy machine that is a scheduler wait for every
request, cached pages included (docs/benchmark-notes.md, "Lesson page tail").

Here each request borrows a one-thread executor from a free list and hands it
back when the request ends, so the threads are started once. The guarantee
Django relies on is unchanged: a request's sync code runs on one thread, and
no other request's runs there at the same time. An executor goes back on the
list only after everything the request gave it has finished (a request
cancelled by a disconnect may leave a sync call running).
"""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import Future, ThreadPoolExecutor

from asgiref.sync import ThreadSensitiveContext
from django.core.handlers.asgi import ASGIHandler

# Idle threads kept: enough for the bench's 64 connections in flight; beyond it, a thread is made
# for the request and stopped after it. With CONN_MAX_AGE each kept thread may hold one database
# connection, so this also bounds what one web process holds open.
MAX_IDLE_THREADS = 64


class OneThread(ThreadPoolExecutor):
    """A one-thread executor that knows whether every call given to it has finished."""

    def __init__(self) -> None:
        super().__init__(max_workers=1, thread_name_prefix="django-request")
        self._count_lock = threading.Lock()
        self.unfinished = 0

    def submit(self, fn, /, *args, **kwargs) -> Future:
        """Queue a call, counted until it finishes."""
        with self._count_lock:
            self.unfinished += 1
        future = super().submit(fn, *args, **kwargs)
        # Added before the caller's own callbacks, so the count drops before asyncio hears the result.
        future.add_done_callback(self._finished)
        return future

    def _finished(self, _future: Future) -> None:
        with self._count_lock:
            self.unfinished -= 1


class RequestThreads:
    """A free list of one-thread executors, one lent to each request at a time."""

    def __init__(self, max_idle: int = MAX_IDLE_THREADS) -> None:
        self.max_idle = max_idle
        self.idle: list[OneThread] = []

    def lend(self) -> OneThread:
        """An idle executor, or a new one (its thread starts with its first call)."""
        if self.idle:
            return self.idle.pop()
        return OneThread()

    def give_back(self, executor: OneThread) -> None:
        """Put the executor back at once if it is idle, else when what it still runs has finished."""
        if executor.unfinished == 0:
            self._shelve(executor)
            return
        # A request cancelled by a disconnect left a sync call running: a marker queued behind it
        # says when it is done.
        loop = asyncio.get_running_loop()

        def drained(_future) -> None:
            try:
                loop.call_soon_threadsafe(self._shelve, executor)
            except RuntimeError:  # the loop has closed: the process is stopping
                executor.shutdown(wait=False)

        executor.submit(_nothing).add_done_callback(drained)

    def _shelve(self, executor: OneThread) -> None:
        if len(self.idle) < self.max_idle:
            self.idle.append(executor)
        else:
            executor.shutdown(wait=False)  # the thread ends on its own; the loop does not wait for it


def _nothing() -> None:
    return None


class KeptThreadsASGIHandler(ASGIHandler):
    """ASGIHandler whose requests run their sync code on threads kept between requests."""

    def __init__(self) -> None:
        super().__init__()
        self.request_threads = RequestThreads()

    async def __call__(self, scope, receive, send):
        """Serve one HTTP request, as Django's handler does, in a context lent a kept thread."""
        if scope["type"] != "http":
            raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
        executor = self.request_threads.lend()
        try:
            async with ThreadSensitiveContext(executor=executor):
                await self.handle(scope, receive, send)
        finally:
            self.request_threads.give_back(executor)
