"""Security headers Django 5.2 does not set by itself."""
from asgiref.sync import iscoroutinefunction, markcoroutinefunction

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


class ContentSecurityPolicyMiddleware:
    """Allow only the site's own scripts, styles and sockets on every response.

    `connect-src 'self'` covers same-origin ws:/wss: in current browsers, so the
    demo widget's websocket needs no extra source. Sync and async capable, so
    it never forces an async request through a thread.
    """

    sync_capable = True
    async_capable = True

    def __init__(self, get_response):
        self.get_response = get_response
        if iscoroutinefunction(get_response):
            markcoroutinefunction(self)

    def __call__(self, request):
        if iscoroutinefunction(self):
            return self._acall(request)
        return self._with_policy(self.get_response(request))

    async def _acall(self, request):
        return self._with_policy(await self.get_response(request))

    @staticmethod
    def _with_policy(response):
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        return response
