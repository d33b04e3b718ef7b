"""Abuse of the demo socket is refused or closed by the real server, and other readers carry on."""
import asyncio
import time
from contextlib import AsyncExitStack

import pytest

from demos.sockets import CLOSE_TOO_BIG, CLOSE_TOO_MANY_MESSAGES
from tests.demos.helpers import demo_socket, handshake_status, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]


@pytest.mark.parametrize("origin", ["https://evil.example", None], ids=["foreign-origin", "no-origin"])
async def test_handshake_from_a_foreign_or_missing_origin_is_refused(origin):
    assert await handshake_status(origin=origin) == 403


async def test_an_oversized_frame_closes_that_socket_with_4413():
    async with demo_socket() as other_reader:
        accepted = await start_run(other_reader, "one-cook", {"requests": 3, "wait_ms": 300})
        async with demo_socket() as abuser:
            await abuser.send_to(text_data="x" * 80_000)  # over the app's cap, under the protocol's
            messages, code = await abuser.receive_until_closed(timeout=5)
            assert [message["code"] for message in messages] == ["too_big"] and code == CLOSE_TOO_BIG
        _, finished = await receive_until_finished(other_reader, accepted["run"])
        assert finished["status"] == "succeeded"


async def test_a_flood_is_rate_limited_then_closed_while_others_keep_streaming():
    async with demo_socket() as other_reader:
        accepted = await start_run(other_reader, "one-cook", {"requests": 3, "wait_ms": 400})
        async with demo_socket() as flooder:
            for _ in range(200):
                await flooder.send_to(text_data="not json")
            messages, code = await flooder.receive_until_closed(timeout=5)
            codes = [message["code"] for message in messages]
            assert "rate_limited" in codes and codes.count("bad_message") <= 25
            assert codes[-1] == "rate_limited" and code == CLOSE_TOO_MANY_MESSAGES
        _, finished = await receive_until_finished(other_reader, accepted["run"])
        assert finished["status"] == "succeeded"


async def test_too_many_sockets_from_one_address_are_refused(daphne_factory):
    server = daphne_factory(DEMO_SOCKETS_PER_IP="3")
    address = "127.0.0.33"  # an address of this test's own: no other test's socket counts against it
    async with AsyncExitStack() as open_sockets:
        for _ in range(2):
            await open_sockets.enter_async_context(demo_socket(server=server, from_address=address))
        async with demo_socket(server=server, from_address=address):
            # Refused before the handshake completes: the client sees HTTP 403, not a close code.
            assert await handshake_status(server=server, from_address=address) == 403
            assert await handshake_status(server=server, from_address="127.0.0.34") == 101  # other addresses still get in
        # Closing one frees a place (once the server has handled its disconnect).
        deadline = time.monotonic() + 5
        while await handshake_status(server=server, from_address=address) != 101:
            assert time.monotonic() < deadline, "closing a socket did not free its place"
            await asyncio.sleep(0.1)
