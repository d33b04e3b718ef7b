"""Abuse of the demo socket is refused or closed, and other readers carry on."""
import json

import pytest
from channels.testing import WebsocketCommunicator

from tests.demos.helpers import ORIGIN, demo_socket, receive_until_finished, start_run

pytestmark = pytest.mark.django_db(transaction=True)


async def _connect(headers):
    from coursesite.asgi import application

    communicator = WebsocketCommunicator(application, "/ws/demos/", headers=headers)
    connected, code = await communicator.connect()
    return communicator, connected, code


@pytest.mark.parametrize("headers", [[(b"origin", b"https://evil.example")], []], ids=["foreign-origin", "no-origin"])
async def test_handshake_from_a_foreign_or_missing_origin_is_refused(headers):
    communicator, connected, _ = await _connect(headers)
    assert not connected
    await communicator.disconnect()


async def test_an_oversized_frame_closes_that_socket_with_1009():
    async with demo_socket() as other_reader:
        accepted = await start_run(other_reader, "one-cook", {"requests": 3, "wait_ms": 300})
        async with demo_socket() as abuser:
            await abuser.send_to(text_data="x" * 100_000)
            closing = await abuser.receive_output(timeout=5)
            assert closing == {"type": "websocket.close", "code": 1009}
        _, finished = await receive_until_finished(other_reader, accepted["run"])
        assert finished["status"] == "succeeded"


async def test_a_flood_is_rate_limited_then_closed_while_others_keep_streaming():
    async with demo_socket() as other_reader:
        accepted = await start_run(other_reader, "one-cook", {"requests": 3, "wait_ms": 400})
        async with demo_socket() as flooder:
            for _ in range(200):
                await flooder.send_to(text_data="not json")
            codes, closed_with = [], None
            while True:
                output = await flooder.receive_output(timeout=5)
                if output["type"] == "websocket.close":
                    closed_with = output["code"]
                    break


                codes.append(json.loads(output["text"])["code"])
            assert "rate_limited" in codes and codes.count("bad_message") <= 25
            assert closed_with == 1008
        _, finished = await receive_until_finished(other_reader, accepted["run"])
        assert finished["status"] == "succeeded"


async def test_too_many_sockets_from_one_address_are_refused(settings):
    settings.DEMO_SOCKETS_PER_IP = 3
    open_sockets = []
    try:
        for _ in range(3):
            communicator, connected, _ = await _connect([ORIGIN])
            assert connected
            open_sockets.append(communicator)
        extra, connected, code = await _connect([ORIGIN])
        assert not connected and code == 4429
        await extra.disconnect()
        # Closing one frees a place.
        await open_sockets.pop().disconnect()
        again, connected, _ = await _connect([ORIGIN])
        assert connected
        open_sockets.append(again)
    finally:
        for communicator in open_sockets:
            await communicator.disconnect()
