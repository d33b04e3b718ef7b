"""Helpers for talking to the site's websockets in tests.

`demo_socket()` connects to the suite's real Daphne (tests/servers.py) with
the `websockets` client, so a test meets the server's own rules: its close
codes, its frame limits, its handshake. The adapter keeps the method names of
channels' WebsocketCommunicator, so a test body reads the same either way.
`in_process_socket()` stays for the few tests of pure consumer logic that
must run the consumer on the test's own event loop; each says why.
"""
from __future__ import annotations

import asyncio
import collections
import json
import time
from contextlib import asynccontextmanager

from channels.testing import WebsocketCommunicator
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.servers import DaphneServer

ORIGIN = (b"origin", b"http://127.0.0.1")
# The in-process socket has no server to add a Host header; the origin check compares with it.
HOST = (b"host", b"127.0.0.1")
DEMO_PATH = "/ws/demos/"
# The step-mode route; the one place to change when it gains the demo's slug.
STEP_PATH = "/ws/steps/counter-race/"

# Set by the `daphne_server` fixture (tests/conftest.py) for the whole session.
default_server: DaphneServer | None = None


def _server(server: DaphneServer | None) -> DaphneServer:
    chosen = server or default_server
    if chosen is None:
        raise RuntimeError("no Daphne is running: add pytest.mark.usefixtures(\"daphne_server\") to this test module")
    return chosen


class SocketClosed(AssertionError):
    """The server closed the socket while the test waited for a message."""

    def __init__(self, code: int | None) -> None:
        super().__init__(f"the server closed the socket with code {code}")
        self.code = code


class ServerSocket:
    """A `websockets` client connection with WebsocketCommunicator-style methods.

    One reader task drains the connection into an inbox, so waiting with a
    timeout never cancels a receive half-way and nothing is lost.
    """

    def __init__(self, connection) -> None:
        self.connection = connection
        self.close_code: int | None = None
        self._inbox: collections.deque = collections.deque()
        self._closed = False
        self._arrived = asyncio.Event()
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        try:
            async for message in self.connection:
                self._inbox.append(message)
                self._arrived.set()
        except ConnectionClosed:
            pass
        finally:
            self.close_code = self.connection.close_code
            self._closed = True
            self._arrived.set()

    async def _wait_for_anything(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self._inbox and not self._closed:
            self._arrived.clear()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError
            try:
                await asyncio.wait_for(self._arrived.wait(), remaining)
            except TimeoutError:
                raise TimeoutError from None

    def put_back(self, messages: list) -> None:
        """Return decoded messages to the front of the inbox, in their order (see `start_run`)."""
        for message in reversed(messages):
            self._inbox.appendleft(json.dumps(message))
        if messages:
            self._arrived.set()

    async def send_to(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        """Send one text or binary frame."""
        await self.connection.send(text_data if text_data is not None else bytes_data)

    async def send_json_to(self, data) -> None:
        """Send one JSON text frame."""
        await self.connection.send(json.dumps(data))

    async def receive_from(self, timeout: float = 1) -> str:
        """The next frame's text; SocketClosed if the server closed first, TimeoutError if nothing came."""
        await self._wait_for_anything(timeout)
        if not self._inbox:
            raise SocketClosed(self.close_code)
        return self._inbox.popleft()

    async def receive_json_from(self, timeout: float = 1):
        """The next frame, decoded from JSON."""
        return json.loads(await self.receive_from(timeout))

    async def receive_nothing(self, timeout: float = 0.1) -> bool:
        """True when no frame (and no close) arrives within `timeout`; what did arrive stays queued."""
        try:
            await self._wait_for_anything(timeout)
        except TimeoutError:
            return True
        return False

    async def receive_until_closed(self, timeout: float = 5) -> tuple[list[dict], int | None]:
        """Every message until the server closes the socket, and the close code the client received."""
        messages = []
        deadline = time.monotonic() + timeout
        while True:
            try:
                messages.append(await self.receive_json_from(timeout=max(0.01, deadline - time.monotonic())))
            except SocketClosed as closed:
                return messages, closed.code

    async def close(self) -> None:
        """Close from the client side and wait for the reader to finish."""
        await self.connection.close()
        await self._reader


@asynccontextmanager
async def demo_socket(path: str = DEMO_PATH, *, server: DaphneServer | None = None, origin: str | None = None,
                      from_address: str | None = None):
    """A websocket connected to a real Daphne (the suite's unless `server` is given); always closed.

    `from_address` picks the client's loopback source address, so per-address
    limits can be tested without other tests' sockets counting against them.
    """
    server = _server(server)
    extra = {} if from_address is None else {"local_addr": (from_address, 0)}
    connection = await connect(server.ws_url(path), origin=origin or server.url, max_size=None, open_timeout=10, **extra)
    socket = ServerSocket(connection)
    try:
        yield socket
    finally:
        await socket.close()


async def handshake_status(path: str = DEMO_PATH, *, server: DaphneServer | None = None, origin: str | None = "",
                           from_address: str | None = None) -> int:
    """The HTTP status a handshake gets: 101 when the socket opens (it is closed again at once).

    `origin=""` sends the server's own origin; None sends no Origin header.
    `from_address` (another loopback address, e.g. 127.0.0.7) is the client's source address.
    """
    server = _server(server)
    headers: dict = {} if origin is None else {"origin": origin or server.url}
    if from_address is not None:
        headers["local_addr"] = (from_address, 0)
    try:
        connection = await connect(server.ws_url(path), open_timeout=10, **headers)
    except InvalidStatus as refused:
        return refused.response.status_code
    await connection.close()
    return 101


class InProcessSocket(WebsocketCommunicator):
    """channels' communicator with `put_back`, so `start_run` works the same on both kinds of socket."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._held: collections.deque = collections.deque()

    async def receive_json_from(self, timeout: float = 1):
        """The next held-back message, or the next one from the application."""
        if self._held:
            return self._held.popleft()
        return await super().receive_json_from(timeout)

    def put_back(self, messages: list) -> None:
        """Return decoded messages to the front, in their order (see `start_run`)."""
        self._held.extendleft(reversed(messages))


@asynccontextmanager
async def in_process_socket(path: str = DEMO_PATH):
    """A socket to coursesite.asgi.application on this test's own event loop, no server in between.

    Only for pure consumer logic a real server would hide (the tasks this loop
    runs, a constant patched in this process); everything else uses demo_socket.
    """
    from coursesite.asgi import application

    communicator = InProcessSocket(application, path, headers=[ORIGIN, HOST])
    connected, _ = await communicator.connect()
    assert connected
    try:
        yield communicator
    finally:
        await communicator.disconnect()
        from coursesite.loop_db import close_for_this_loop

        await close_for_this_loop()  # this test's loop is about to end


async def wait_for_run_status(run_id: str, statuses: set[str], timeout: float = 5) -> str:
    """Poll the run's record (written by another process) until its status is one of `statuses`."""
    from demos.models import Run

    deadline = time.monotonic() + timeout
    while True:
        status = (await Run.objects.aget(id=run_id)).status
        if status in statuses or time.monotonic() > deadline:
            return status
        await asyncio.sleep(0.05)


async def no_run_left_running(timeout: float = 5) -> bool:
    """True once no run record says `running` (the server ends runs after their socket closes)."""
    from demos.models import Run

    deadline = time.monotonic() + timeout
    while await Run.objects.filter(status="running").aexists():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def receive_runs(communicator, run_ids: list[str], timeout: float = 30) -> dict[str, tuple[list[dict], dict]]:
    """Collect several runs' event batches until each has its `finished` message."""
    batches = {run_id: [] for run_id in run_ids}
    finished: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(finished) < len(run_ids):
        message = await communicator.receive_json_from(timeout=max(0.1, deadline - time.monotonic()))
        run_id = message.get("run")
        if run_id not in batches:
            if message["type"] in {"events", "finished"}:
                continue  # the tail of another run on this socket (one the test cancelled or ignores)
            raise AssertionError(f"unexpected message {message}")
        if message["type"] == "events":
            assert run_id not in finished, "events after finished"
            batches[run_id].append(message)
        elif message["type"] == "finished":
            finished[run_id] = message
        else:
            raise AssertionError(f"unexpected message {message}")
    return {run_id: (batches[run_id], finished[run_id]) for run_id in run_ids}


async def receive_until_finished(communicator, run_id: str, timeout: float = 30) -> tuple[list[dict], dict]:
    """Collect one run's event batches until its `finished` message."""
    return (await receive_runs(communicator, [run_id], timeout))[run_id]


async def start_run(communicator, demo: str, params: dict | None = None, ref: str = "r1") -> dict:
    """Ask for a run and return its `accepted`; other runs' messages that arrive meanwhile stay queued, in order."""
    await communicator.send_json_to({"type": "run", "demo": demo, "params": params or {}, "ref": ref})
    held = []
    try:
        while True:
            message = await communicator.receive_json_from(timeout=10)
            if message["type"] not in {"events", "finished"}:
                break
            held.append(message)  # an earlier run's stream: the caller still wants every batch of it
    finally:
        put_back = getattr(communicator, "put_back", None)  # the in-process communicator has no inbox to return to
        if held and put_back is not None:
            put_back(held)
    assert message["type"] == "accepted", message
    return message


class LoopLagMeter:
    """Measures how late this event loop wakes a 10 ms heartbeat."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.max_lag_ms = 0.0
        self._task: asyncio.Task | None = None

    async def _beat(self) -> None:
        while True:
            expected = time.perf_counter() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.max_lag_ms = max(self.max_lag_ms, (time.perf_counter() - expected) * 1000)

    async def __aenter__(self):
        self._task = asyncio.create_task(self._beat())
        return self

    async def __aexit__(self, *exc):
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def open_lesson_demo(context, url: str):
    """Open a lesson in a browser context; return (page, its first demo widget once ready, console problems)."""
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    await page.goto(url)
    demo = page.locator("section.demo").first
    await demo.locator("xpath=.").and_(page.locator('[data-widget-state="ready"]')).wait_for(timeout=15_000)
    return page, demo, problems


async def text_matches(page, locator, pattern: str, timeout: float = 20_000) -> None:
    """Wait until the element's text matches the regular expression `pattern` (in the browser)."""
    await page.wait_for_function("([el, source]) => new RegExp(source).test(el.textContent)",
                                 arg=[await locator.element_handle(), pattern], timeout=timeout)
