"""WhiteNoise's middleware, made able to run on the event loop.

WhiteNoise 6 ships a sync-only middleware. Placed above async-capable ones,
it makes Django run every request in the sync thread and reach the layers
below it (the cached reader pages, say) through `async_to_sync`, a thread
waiting on the event loop. When Daphne stops its loop on SIGTERM while such a
request is in flight, that thread waits for ever and the process never exits
(issue 13). Serving a static file needs nothing a thread gives: the file table
is in memory, and Django streams the file body itself.
"""
from __future__ import annotations

from asgiref.sync import iscoroutinefunction, markcoroutinefunction, sync_to_async
from django.http import HttpRequest, HttpResponseBase
from whitenoise.middleware import WhiteNoiseMiddleware


class AsyncWhiteNoiseMiddleware(WhiteNoiseMiddleware):
    """WhiteNoiseMiddleware in whichever mode the stack around it runs."""

    sync_capable = True
    async_capable = True

    def __init__(self, get_response=None, settings=None) -> None:
        if settings is None:
            from django.conf import settings
        super().__init__(get_response, settings)
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.acall(request)
        return super().__call__(request)

    async def acall(self, request: HttpRequest) -> HttpResponseBase:
        """Answer a static file from the loop, or pass the request on down the async stack."""
        if self.autorefresh:
            # Development only: finding a file means walking the source folders, so not on the loop.
            # A plain worker thread, not the sync thread: it never waits on the loop.
            static_file = await sync_to_async(self.find_file, thread_sensitive=False)(request.path_info)
        else:
            static_file = self.files.get(request.path_info)
        if static_file is not None:
            return self.serve(static_file, request)
        return await self.get_response(request)
