"""Cached reader pages, answered before the synchronous part of the stack.

An anonymous reader's copy of a page is cached once it has been rendered
(lessons.views). Serving that copy needs no database, session or template, so
this middleware answers it first, on the event loop: a cached page never
waits its turn for Django's one sync thread. Anything else (a visitor with a
session, a page not cached yet, Redis unreachable) goes on down the stack.
"""
from django.conf import settings
from django.core.cache import caches
from django.utils.cache import patch_vary_headers

from coursesite.compression import accepts_gzip
from coursesite.middleware import SyncAndAsyncMiddleware
from lessons.services import CACHE_ERRORS, areader_page_key, reader_page_key


def _wants_reader_copy(request) -> bool:
    # Staff are logged in, so they have a session cookie: they never get the readers' copy.
    return request.method in ("GET", "HEAD") and settings.SESSION_COOKIE_NAME not in request.COOKIES


def _served(request, cached):
    # lessons.views stores a plain copy and, when it is smaller, a gzip one.
    if not isinstance(cached, dict):
        return None
    response = cached["gzip"] if cached.get("gzip") is not None and accepts_gzip(request) else cached["plain"]
    # What SessionMiddleware adds further in: the page differs for a visitor with a session.
    patch_vary_headers(response, ("Cookie", "Accept-Encoding"))
    return response


class CachedReaderPageMiddleware(SyncAndAsyncMiddleware):
    def call(self, request):
        if _wants_reader_copy(request):
            try:
                cached = caches["pages"].get(reader_page_key(path=request.path))
            except CACHE_ERRORS:
                cached = None
            served = _served(request, cached) if cached is not None else None
            if served is not None:
                return served
        return self.get_response(request)

    async def acall(self, request):
        if _wants_reader_copy(request):
            try:
                # The pages cache is this process's memory: reading it needs no thread.
                cached = caches["pages"].get(await areader_page_key(path=request.path))
            except CACHE_ERRORS:
                cached = None
            served = _served(request, cached) if cached is not None else None
            if served is not None:
                return served
        return await self.get_response(request)
