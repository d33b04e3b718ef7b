"""Gzip for HTML and JSON answers, without moving a request off the event loop.

Django's GZipMiddleware is sync-only: on the ASGI stack every request would
cross to the sync thread and back just to be compressed. This one runs in
either mode. Small bodies are compressed where they are (a few hundred
microseconds); a body larger than INLINE_LIMIT_BYTES is compressed in a thread,
so a big run record never stalls the loop. Cached reader pages arrive already
compressed (lessons.views stores a gzip copy beside the plain one), so the hot
path compresses nothing. Like Django's, it adds up to 100 random bytes to each
compressed body, the BREACH mitigation Django ships.
"""
from __future__ import annotations

import asyncio
import re

from django.http import HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.utils.cache import patch_vary_headers
from django.utils.text import compress_string

from coursesite.middleware import SyncAndAsyncMiddleware

ACCEPTS_GZIP = re.compile(r"\bgzip\b")
COMPRESSIBLE_TYPES = ("text/", "application/json", "application/javascript", "image/svg+xml")
MIN_BYTES = 512
INLINE_LIMIT_BYTES = 256 * 1024
RANDOM_BYTES = 100


def accepts_gzip(request: HttpRequest) -> bool:
    """True when the client said it can read gzip."""
    return bool(ACCEPTS_GZIP.search(request.META.get("HTTP_ACCEPT_ENCODING", "")))


def _compressible(response: HttpResponseBase) -> bool:
    if response.streaming or response.has_header("Content-Encoding"):
        return False
    content_type = response.get("Content-Type", "")
    return content_type.startswith(COMPRESSIBLE_TYPES) and len(response.content) >= MIN_BYTES  # type: ignore[attr-defined]


def _apply(response: HttpResponse, compressed: bytes) -> HttpResponse:
    response.content = compressed
    response.headers["Content-Length"] = str(len(compressed))
    response.headers["Content-Encoding"] = "gzip"
    etag = response.get("ETag")
    if etag and etag.startswith('"'):
        response.headers["ETag"] = "W/" + etag  # a strong validator no longer matches the bytes (RFC 9110 8.8.1)
    return response


def compressed_copy(response: HttpResponse) -> HttpResponse | None:
    """A gzip copy of a finished response (headers kept), or None when it would not be smaller."""
    if not _compressible(response):
        return None
    compressed = compress_string(response.content, max_random_bytes=RANDOM_BYTES)
    if len(compressed) >= len(response.content):
        return None
    copy = HttpResponse(status=response.status_code)
    for name, value in response.headers.items():
        copy.headers[name] = value
    patch_vary_headers(copy, ("Accept-Encoding",))
    return _apply(copy, compressed)


class CompressionMiddleware(SyncAndAsyncMiddleware):
    def _compress(self, request: HttpRequest, response: HttpResponseBase, compressed: bytes | None) -> HttpResponseBase:
        if compressed is not None and len(compressed) < len(response.content):  # type: ignore[attr-defined]
            return _apply(response, compressed)  # type: ignore[arg-type]
        return response

    def call(self, request: HttpRequest) -> HttpResponseBase:
        response = self.get_response(request)
        if not _compressible(response):
            return response
        patch_vary_headers(response, ("Accept-Encoding",))
        if not accepts_gzip(request):
            return response
        compressed = compress_string(response.content, max_random_bytes=RANDOM_BYTES)
        return self._compress(request, response, compressed)

    async def acall(self, request: HttpRequest) -> HttpResponseBase:
        response = await self.get_response(request)
        if not _compressible(response):
            return response
        patch_vary_headers(response, ("Accept-Encoding",))
        if not accepts_gzip(request):
            return response
        body = response.content
        if len(body) > INLINE_LIMIT_BYTES:
            compressed = await asyncio.to_thread(compress_string, body, max_random_bytes=RANDOM_BYTES)
        else:
            compressed = compress_string(body, max_random_bytes=RANDOM_BYTES)
        return self._compress(request, response, compressed)
