"""Every websocket route guards itself the same way, as the real server delivers it.

Against the suite's real Daphne on both routes: frames over the app's 16 KiB
cap get `too_big` and close 4413; frames over the protocol's 2 MiB limit are
refused by the server's websocket layer itself with 1009 (message too big),
before their payload is read; a text frame that is not UTF-8 gets 1007; a flood gets `rate_limited` and close 4429, deep or
binary frames get `bad_message` on a socket that keeps working. Afterwards
the server has logged no traceback and a new socket from the same address
runs a demo to the end.
"""
import contextlib
import logging

import pytest
from websockets.exceptions import ConnectionClosed

from demos.consumers import DemoConsumer
from demos.sockets import CLOSE_TOO_BIG, CLOSE_TOO_MANY_MESSAGES
from tests.demos.helpers import DEMO_PATH, STEP_PATH, demo_socket, in_process_socket, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

ROUTES = pytest.mark.parametrize("path", [DEMO_PATH, STEP_PATH], ids=["demos", "steps"])
# Protocol-level closes by the server's websocket layer (RFC 6455 section 7.4.1).
CLOSE_INVALID_PAYLOAD = 1007
CLOSE_MESSAGE_TOO_BIG = 1009
TINY_RUN = {"requests": 2, "wait_ms": 10, "jitter_ms": 0}


async def run_one_cook(socket) -> None:
    """A tiny one-cook run on a demo socket, to `finished`."""
    accepted = await start_run(socket, "one-cook", TINY_RUN, ref="after")
    _, finished = await receive_until_finished(socket, accepted["run"])
    assert finished["status"] == "succeeded", finished


async def still_works(socket, path: str) -> None:
    """The route's own work still succeeds on this socket: a run, or a step session opened and closed."""
    if path == DEMO_PATH:
        await run_one_cook(socket)
        return
    await socket.send_json_to({"type": "open", "scenario": "atomic-update", "ref": "after"})
    opened = await socket.receive_json_from(timeout=20)
    assert opened["type"] == "opened", opened
    await socket.send_json_to({"type": "close", "session": opened["session"]})
    assert (await socket.receive_json_from(timeout=10))["type"] == "closed"


@pytest.fixture
async def server_stays_healthy(daphne_server):
    """After the test: no traceback in the server's log, and a new reader still runs a demo."""
    mark = daphne_server.log_mark()
    yield
    async with demo_socket() as fresh_reader:
        await run_one_cook(fresh_reader)
    logged = daphne_server.log_since(mark)
    assert "Traceback" not in logged, logged


@ROUTES
@pytest.mark.parametrize("size", [80 * 1024, 1024 * 1024], ids=["80KiB", "1MiB"])
async def test_a_frame_over_the_cap_is_too_big_then_closed_with_4413(path, size, server_stays_healthy):
    async with demo_socket(path) as socket:
        await socket.send_to(text_data="x" * size)
        messages, code = await socket.receive_until_closed(timeout=10)
    assert [(message["type"], message["code"]) for message in messages] == [("error", "too_big")]
    assert code == CLOSE_TOO_BIG


@ROUTES
@pytest.mark.parametrize("size", [4 * 1024 * 1024, 16 * 1024 * 1024], ids=["4MiB", "16MiB"])
async def test_a_frame_over_the_protocol_limit_is_refused_by_the_server_with_1009(path, size, server_stays_healthy):
    async with demo_socket(path) as socket:
        with contextlib.suppress(ConnectionClosed):  # the close may come before the client has sent it all
            await socket.send_to(text_data="x" * size)
        messages, code = await socket.receive_until_closed(timeout=10)
    assert messages == [] and code == CLOSE_MESSAGE_TOO_BIG


@ROUTES
async def test_a_text_frame_that_is_not_utf8_is_refused_by_the_server_with_1007(path, server_stays_healthy):
    async with demo_socket(path) as socket:
        await socket.connection.send(b'{"type": "\xff\xfe"}', text=True)
        messages, code = await socket.receive_until_closed(timeout=10)
    assert messages == [] and code == CLOSE_INVALID_PAYLOAD


@ROUTES
async def test_a_flood_is_rate_limited_then_closed_with_4429(path, server_stays_healthy):
    async with demo_socket(path) as socket:
        for _ in range(200):
            await socket.send_json_to({"type": "nothing-real"})
        messages, code = await socket.receive_until_closed(timeout=10)
    codes = [message["code"] for message in messages]
    assert set(codes) == {"bad_message", "rate_limited"} and codes[-1] == "rate_limited"
    assert code == CLOSE_TOO_MANY_MESSAGES


@ROUTES
async def test_an_array_ten_thousand_deep_is_a_bad_message_and_the_socket_keeps_working(path, server_stays_healthy):
    async with demo_socket(path) as socket:
        # Only the openings: with its closings it would be over the frame cap. The parser
        # would recurse ten thousand levels before finding the end missing.
        await socket.send_to(text_data="[" * 10_000)
        error = await socket.receive_json_from(timeout=5)
        assert (error["type"], error["code"]) == ("error", "bad_message"), error
        await still_works(socket, path)


@ROUTES
async def test_a_binary_frame_is_a_bad_message_and_the_socket_keeps_working(path, server_stays_healthy):
    async with demo_socket(path) as socket:
        await socket.send_to(bytes_data=b'{"type": "run"}')
        error = await socket.receive_json_from(timeout=5)
        assert (error["type"], error["code"]) == ("error", "bad_message"), error
        await still_works(socket, path)


class RecordsKept(logging.Handler):
    """Keeps what it is given (the site's logging config does not propagate to pytest's caplog)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


async def test_a_server_bug_in_a_handler_is_internal_logged_once_and_the_socket_stays_open(monkeypatch):
    # In process on purpose: the bug is planted by patching this process's consumer.
    async def broken_cancel(self, content):
        raise KeyError("planted")

    monkeypatch.setattr(DemoConsumer, "cancel_run", broken_cancel)
    import coursesite.asgi  # noqa: F401  (sets up logging; a handler added before that would be dropped)

    kept = RecordsKept()
    logging.getLogger("demos.sockets").addHandler(kept)
    try:
        async with in_process_socket() as socket:
            await socket.send_json_to({"type": "cancel", "run": "x"})
            error = await socket.receive_json_from(timeout=5)
            assert (error["type"], error["code"]) == ("error", "internal")
            assert "KeyError" not in error["message"] and "planted" not in error["message"]
            await run_one_cook(socket)
    finally:
        logging.getLogger("demos.sockets").removeHandler(kept)
    assert len(kept.records) == 1 and kept.records[0].exc_info[0] is KeyError
