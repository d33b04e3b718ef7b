"""Security headers Django 5.2 does not set by itself, and a base for middleware that runs sync or async."""
from asgiref.sync import iscoroutinefunction, markcoroutinefunction
from django.http import HttpRequest, HttpResponseBase

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "object-src 'none'",
        "base-uri 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
    ]
)


class SyncAndAsyncMiddleware:
    """A middleware that runs in whichever mode the stack around it runs.

    Django hops a request to a thread at every sync-only middleware; one that
    can do both lets an async request stay on the event loop. Subclasses
    write `call` and `acall`.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self.acall(request)
        return self.call(request)

    def call(self, request: HttpRequest) -> HttpResponseBase:
        """Answer a request when the stack around this middleware runs synchronously."""
        raise NotImplementedError

    async def acall(self, request: HttpRequest) -> HttpResponseBase:
        """Answer a request on the event loop when the stack around this middleware is async."""
        raise NotImplementedError


class ContentSecurityPolicyMiddleware(SyncAndAsyncMiddleware):
    """Allow only the site's own scripts, styles and sockets on every response.

    `connect-src 'self'` covers same-origin ws:/wss: in current browsers, so the
    demo widget's websocket needs no extra source.
    """

    def call(self, request):
        return self._with_policy(self.get_response(request))

    async def acall(self, request):
        return self._with_policy(await self.get_response(request))

    @staticmethod
    def _with_policy(response):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
