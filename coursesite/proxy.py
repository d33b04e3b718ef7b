"""The real client address behind a reverse proxy, believed only from proxies we trust.

Behind nginx every connection's peer is the proxy, so every per-address cap
would count the whole world as one reader. `TrustedProxyMiddleware` rewrites
`scope["client"]` for HTTP and websocket scopes from `X-Forwarded-For`, but
only when the direct peer is one of `settings.TRUSTED_PROXIES`; from anyone
else the header is ignored, so it cannot be forged from outside. The address
taken is the right-most one that is not itself a trusted proxy: everything
to its left was written by the client and may be made up.
"""
from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

from django.conf import settings

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED_FOR = b"x-forwarded-for"


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """Addresses and CIDRs as networks (a bare address is a network of one)."""
    return tuple(ipaddress.ip_network(entry.strip(), strict=False) for entry in entries if entry.strip())


def _parse_address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None


def forwarded_client(peer: str, forwarded_for: list[str], trusted: tuple[Network, ...]) -> str:
    """The client address for a connection from `peer` carrying these X-Forwarded-For values."""
    def is_trusted(address: ipaddress.IPv4Address | ipaddress.IPv6Address | None) -> bool:
        return address is not None and any(address in network for network in trusted)

    if not is_trusted(_parse_address(peer)):
        return peer
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    for hop in reversed(hops):
        address = _parse_address(hop)
        if address is None:
            return peer  # a hop a proxy of ours would never write: believe nothing further left
        if not is_trusted(address):
            return str(address)
    return peer


class TrustedProxyMiddleware:
    """ASGI middleware: `scope["client"]` becomes the forwarded client when the peer is a trusted proxy."""

    def __init__(self, app: Any, trusted: Iterable[str] | None = None) -> None:
        self.app = app
        self.trusted = parse_networks(settings.TRUSTED_PROXIES if trusted is None else trusted)

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        if self.trusted and scope["type"] in ("http", "websocket") and scope.get("client"):
            peer, port = scope["client"][0], scope["client"][1]
            values = [value.decode("latin-1") for name, value in scope.get("headers", ()) if name == FORWARDED_FOR]
            client = forwarded_client(peer, values, self.trusted) if values else peer
            if client != peer:
                scope = {**scope, "client": (client, port)}
        return await self.app(scope, receive, send)
