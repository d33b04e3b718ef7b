"""Which hosts and origins the site answers to.

Two gates, both ahead of anything that could answer early:

- `AllowedHostMiddleware` validates the `Host` header against ALLOWED_HOSTS
  for every HTTP request, before WhiteNoise or the cached reader pages can
  answer (Django only checks the host when something calls `get_host()`, and
  an early answer never does). A foreign host gets 400.
- `SameOriginValidator` admits a websocket handshake only when its `Origin`
  names the same scheme, host and port as the request itself (or an entry of
  CSRF_TRUSTED_ORIGINS). Channels' AllowedHostsOriginValidator compares the
  host alone, so a page on another port of the same machine, or a plain-http
  page in front of an https site, could open demo sockets with a reader's
  browser. See docs/adr/0011-websocket-origin-same-scheme-host-port.md.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.http import HttpRequest, HttpResponseBase
from django.http.request import split_domain_port, validate_host

from coursesite.middleware import SyncAndAsyncMiddleware

DEFAULT_PORTS = {"http": 80, "https": 443}
# A websocket's own scheme, named as the page that opened it would be.
PAGE_SCHEME = {"ws": "http", "wss": "https", "http": "http", "https": "https"}

Origin = tuple[str, str, int]  # scheme, host (lower case, no brackets), port


class AllowedHostMiddleware(SyncAndAsyncMiddleware):
    """Answer 400 to any request whose Host is not in ALLOWED_HOSTS, on every path."""

    def call(self, request):
        request.get_host()  # raises DisallowedHost, which Django turns into a 400
        return self.get_response(request)

    async def acall(self, request: HttpRequest) -> HttpResponseBase:
        request.get_host()
        return await self.get_response(request)


def parse_origin(value: str) -> Origin | None:
    """`scheme://host[:port]` as a comparable triple; None for anything else (including "null")."""
    try:
        parts = urlsplit(value.strip())
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def request_origin(scope: dict[str, Any]) -> Origin | None:
    """The origin a same-site page opening this socket would have: the socket's scheme and its Host header."""
    headers = dict(scope.get("headers") or [])
    host_header = headers.get(b"host", b"").decode("latin1")
    domain, port = split_domain_port(host_header)
    if not domain or not validate_host(domain, settings.ALLOWED_HOSTS):
        return None
    scheme = PAGE_SCHEME.get(scope.get("scheme") or "ws", "http")
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        # Behind a TLS-terminating proxy (HTTPS=1) the socket arrives as plain ws; trust the
        # proxy's word for the scheme exactly as Django does for pages.
        name, secure_value = proxy_header
        header = name.removeprefix("HTTP_").lower().replace("_", "-").encode("latin1")
        if headers.get(header, b"").decode("latin1").split(",")[0].strip() == secure_value:
            scheme = "https"
    return scheme, domain.strip("[]"), int(port) if port else DEFAULT_PORTS[scheme]


def trusted_origin(origin: Origin) -> bool:
    """True when CSRF_TRUSTED_ORIGINS names this origin (a leading `*.` matches subdomains)."""
    scheme, host, port = origin
    for entry in settings.CSRF_TRUSTED_ORIGINS:
        trusted_scheme, _, rest = entry.partition("://")
        if trusted_scheme.lower() != scheme:
            continue
        wildcard = rest.startswith("*.")
        trusted = parse_origin(f"{trusted_scheme}://{rest[2:] if wildcard else rest}")
        if trusted is None or trusted[2] != port:
            continue
        if trusted[1] == host or (wildcard and host.endswith("." + trusted[1])):
            return True
    return False


def origin_allowed(scope: dict[str, Any]) -> bool:
    """The rule itself: an Origin header, equal in scheme, host and port to the request's own or a trusted one."""
    values = [value for name, value in scope.get("headers") or [] if name == b"origin"]
    if len(values) != 1:
        return False
    origin = parse_origin(values[0].decode("latin1"))
    if origin is None:
        return False
    return origin == request_origin(scope) or trusted_origin(origin)


class SameOriginValidator:
    """ASGI middleware for websockets: refuse (HTTP 403) a handshake whose Origin is not the site's own."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] == "websocket" and not origin_allowed(scope):
            return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)
