"""Behind a trusted proxy the caps count the real client; from anyone else X-Forwarded-For is ignored.

Against a real Daphne started with TRUSTED_PROXIES=127.0.0.44: a connection
from 127.0.0.44 carrying `X-Forwarded-For: 127.0.0.99` counts against
127.0.0.99; the same header from an untrusted peer changes nothing.
"""
from __future__ import annotations

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from coursesite.proxy import forwarded_client, parse_networks
from demos.limits import address_lease_count
from tests.demos.helpers import DEMO_PATH

pytestmark = [pytest.mark.django_db(transaction=True)]

PROXY = "127.0.0.44"
DEMO_SOCKETS = "demo-sockets"


async def open_socket(server, *, peer: str, forwarded_for: str | None):
    headers = {} if forwarded_for is None else {"X-Forwarded-For": forwarded_for}
    return await connect(server.ws_url(DEMO_PATH), origin=server.url, local_addr=(peer, 0),
                         additional_headers=headers, open_timeout=10)


async def test_a_trusted_proxy_s_forwarded_address_is_the_one_counted(daphne_factory):
    server = daphne_factory(TRUSTED_PROXIES=PROXY, DEMO_SOCKETS_PER_IP="2")
    first = await open_socket(server, peer=PROXY, forwarded_for="127.0.0.99")
    # A client-written hop to the left is not believed: the right-most untrusted address counts.
    second = await open_socket(server, peer=PROXY, forwarded_for="10.9.9.9, 127.0.0.99")
    try:
        assert await address_lease_count(DEMO_SOCKETS, "127.0.0.99") == 2
        assert await address_lease_count(DEMO_SOCKETS, PROXY) == 0
        with pytest.raises(InvalidStatus) as refused:
            await open_socket(server, peer=PROXY, forwarded_for="127.0.0.99")
        assert refused.value.response.status_code == 403
        other_reader = await open_socket(server, peer=PROXY, forwarded_for="127.0.0.98")  # everyone else still gets in
        await other_reader.close()
    finally:
        await first.close()
        await second.close()


async def test_from_an_untrusted_peer_the_header_is_ignored(daphne_factory):
    server = daphne_factory(TRUSTED_PROXIES=PROXY)
    spoofer = await open_socket(server, peer="127.0.0.45", forwarded_for="127.0.0.97")
    try:
        assert await address_lease_count(DEMO_SOCKETS, "127.0.0.45") == 1
        assert await address_lease_count(DEMO_SOCKETS, "127.0.0.97") == 0
    finally:
        await spoofer.close()


@pytest.mark.parametrize(("peer", "header", "expected"), [
    ("127.0.0.44", ["203.0.113.7"], "203.0.113.7"),
    ("127.0.0.44", ["198.51.100.1, 203.0.113.7"], "203.0.113.7"),
    ("127.0.0.44", ["203.0.113.7, 10.0.0.2"], "203.0.113.7"),  # 10.0.0.0/8 is a trusted hop too
    ("127.0.0.44", ["203.0.113.7", "10.0.0.2"], "203.0.113.7"),  # the header repeated
    ("127.0.0.44", ["not-an-address"], "127.0.0.44"),
    ("192.0.2.5", ["203.0.113.7"], "192.0.2.5"),  # an untrusted peer's header is ignored
])
def test_the_right_most_untrusted_hop_is_the_client(peer, header, expected):
    assert forwarded_client(peer, header, parse_networks(["127.0.0.44", "10.0.0.0/8"])) == expected
