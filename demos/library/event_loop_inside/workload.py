"""What runs on the instrumented loop: client sockets, timers, a sleeping task and the blocking callback.

Every actor notes what it did (stamped on the loop's clock) instead of
emitting it: a plain callback that raised the engine's stop would only get
logged by the loop, so the reporter, which runs between iterations, emits the
notes for them.
"""
from __future__ import annotations

import asyncio
import functools
import socket
import time
from dataclasses import dataclass, field
from typing import Any

# The schedule, in seconds of loop time from the workload's start.
TIMERS_DUE_S = (0.30, 0.60, 0.90, 1.03, 1.09, 1.15, 1.50, 1.90)  # three just behind the blocking callback
SLEEPER_WAKES_S = (0.45, 0.85, 1.12, 1.65, 2.05)
BLOCK_AT_S = 1.00
REQUESTS_AT_S = (0.15, 0.55, 0.95, 1.40)  # client 1's third reply lands while the loop is blocked
CLIENT_STAGGER_S = 0.12  # client n sends each request (n - 1) x this later than client 1
REPLY_DELAY_S = 0.08  # the upstream's think time, slept in its own thread
WORKLOAD_DEADLINE_S = 8.0  # a watchdog: an upstream that stops answering ends the run as failed, not timed out
TRANSPORT_GLOSSES = {
    "_add_reader": "registers the socket with the selector, once",
    "_read_ready": "recv() the bytes, hand them to data_received",
}


class UpstreamFailure(Exception):
    """The echo upstream did not answer as an echo server must; the run cannot show what it set out to."""


@dataclass
class Lanes:
    """Which timeline lane is which actor."""

    clients: int
    loop: int = 0

    def socket(self, client: int) -> int:
        """The lane of client `client`'s socket (0-based)."""
        return 1 + client

    @property
    def sleeper(self) -> int:
        """The lane of the task that sleeps with asyncio.sleep."""
        return 1 + self.clients

    def timer(self, index: int) -> int:
        """The lane of timer `index` (0-based)."""
        return 2 + self.clients + index

    @property
    def count(self) -> int:
        """How many lanes the run draws."""
        return 2 + self.clients + len(TIMERS_DUE_S)

    def labels(self) -> list[str]:
        """Every lane's label, in lane order."""
        return (["loop thread"] + [f"socket {client + 1}" for client in range(self.clients)]
                + ["sleeping task (asyncio.sleep)"]
                + [f"timer {index + 1} (call_at +{due * 1000:.0f} ms)" for index, due in enumerate(TIMERS_DUE_S)])


@dataclass
class Workload:
    """Everything the workload's actors note while the loop runs; the reporter streams it after each iteration."""

    lanes: Lanes
    blocking_s: float
    start: float = 0.0
    notes: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    timer_lateness: list[tuple[str, float, float]] = field(default_factory=list)  # (what, due, late_s)
    block_span: tuple[float, float] | None = None
    socket_clients: dict[int, int] = field(default_factory=dict)  # fd -> client index (0 is "socket 1")
    transport_clients: dict[asyncio.BaseTransport, int] = field(default_factory=dict)  # still known once closed
    client_ports: dict[int, int] = field(default_factory=dict)  # fd -> the client's local port

    def note(self, kind: str, at: float, **fields: Any) -> None:
        """Queue an event stamped `at` (loop time) for the reporter to emit."""
        self.notes.append((kind, {"at": at, **fields}))

    def fire_timer(self, index: int, due: float) -> None:
        """A plain timer callback: note how late it ran."""
        now = time.monotonic()
        self.timer_lateness.append((f"timer {index + 1}", due, now - due))
        lane = self.lanes.timer(index)
        self.note("state", due, lane=lane, state="queued", label="due, waiting for the loop")
        self.note("state", now, lane=lane, state="done")
        self.note("metric", now, name="timer_late_ms", value=round((now - due) * 1000, 2), unit="ms")

    def block_the_loop(self) -> None:
        """The blocking callback: time.sleep on the loop thread, the mistake shown on purpose."""
        started = time.monotonic()
        time.sleep(self.blocking_s)
        self.block_span = (started, time.monotonic())

    async def sleeper(self) -> None:
        """A task that wakes at fixed moments with asyncio.sleep (a timer on the heap, nothing else)."""
        lane = self.lanes.sleeper
        loop = asyncio.get_running_loop()
        for wake in SLEEPER_WAKES_S:
            due = self.start + wake
            self.note("state", loop.time(), lane=lane, state="waiting", label=f"await asyncio.sleep(until +{wake * 1000:.0f} ms)")
            await asyncio.sleep(max(0.0, due - loop.time()))
            now = loop.time()
            self.timer_lateness.append(("the sleeping task", due, now - due))
            self.note("state", due, lane=lane, state="queued", label="timer fired, task waiting to resume")
            self.note("state", now, lane=lane, state="done")
            self.note("metric", now, name="timer_late_ms", value=round((now - due) * 1000, 2), unit="ms")

    async def client(self, client: int, port: int) -> None:
        """Send a line to the upstream at each scheduled moment and wait for its echo."""
        lane, name = self.lanes.socket(client), f"socket {client + 1}"
        loop = asyncio.get_running_loop()
        # The socket is made here, not inside open_connection, so the log can name it from its first select().
        connection = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        connection.setblocking(False)
        self.socket_clients[connection.fileno()] = client
        try:
            await loop.sock_connect(connection, ("127.0.0.1", port))
            reader, writer = await asyncio.open_connection(sock=connection)
        except OSError as error:
            connection.close()
            raise UpstreamFailure(f"{name} could not connect to the upstream on 127.0.0.1:{port}: {error}") from None
        self.transport_clients[writer.transport] = client
        self.client_ports[connection.fileno()] = connection.getsockname()[1]
        try:
            for number, at in enumerate(REQUESTS_AT_S, start=1):
                await asyncio.sleep(max(0.0, self.start + at + client * CLIENT_STAGGER_S - loop.time()))
                request = f"request {number} from {name}\n".encode()
                writer.write(request)
                self.note("state", loop.time(), lane=lane, state="waiting", label="await reader.readline()")
                echo = await reader.readline()
                if not echo:
                    raise UpstreamFailure(f"{name}: the upstream closed the connection instead of echoing request {number}")
                if echo != request:
                    raise UpstreamFailure(f"{name}: the upstream answered {echo[:60]!r} to {request!r}")
                self.note("state", loop.time(), lane=lane, state="done", label="echo received")
        finally:
            writer.close()

    async def main(self, port: int) -> None:
        """Schedule the timers (and the blocking callback), run the clients and the sleeper, within the watchdog."""
        loop = asyncio.get_running_loop()
        current = asyncio.current_task()
        if current is not None:
            current.set_name("workload")
        self.start = loop.time()
        for index, due in enumerate(TIMERS_DUE_S):
            loop.call_at(self.start + due, self.fire_timer, index, self.start + due)
            self.note("state", self.start, lane=self.lanes.timer(index), state="waiting", label="on the timer heap")
        if self.blocking_s > 0:
            loop.call_at(self.start + BLOCK_AT_S, self.block_the_loop)
        try:
            async with asyncio.timeout(WORKLOAD_DEADLINE_S):
                try:
                    async with asyncio.TaskGroup() as group:
                        group.create_task(self.sleeper(), name="sleeper")
                        for client in range(self.lanes.clients):
                            group.create_task(self.client(client, port), name=f"client {client + 1}")
                except* UpstreamFailure as failures:
                    raise UpstreamFailure("; ".join(str(failure) for failure in failures.exceptions)) from None
                # The last timer may still be due after the clients and the sleeper are done.
                await asyncio.sleep(max(0.0, self.start + max(TIMERS_DUE_S) - loop.time()))
        except TimeoutError:
            raise UpstreamFailure(f"no echo within {WORKLOAD_DEADLINE_S:g} s: the upstream stopped answering") from None


def describe_callback(handle: asyncio.Handle, workload: Workload) -> str:
    """A short name for the callback a handle wraps (`_callback` and `_args` are asyncio-private)."""
    callback = handle._callback  # type: ignore[attr-defined]
    arguments = handle._args
    if isinstance(callback, functools.partial):
        callback = callback.func
    owner = getattr(callback, "__self__", None)
    if isinstance(owner, asyncio.Task):
        return f"resume task {owner.get_name()}"
    if owner is workload:
        if callback.__func__ is Workload.fire_timer:
            return f"timer {arguments[0] + 1}"
        if callback.__func__ is Workload.block_the_loop:
            return "BLOCKING callback (time.sleep)"
    if isinstance(owner, asyncio.BaseTransport):
        client = workload.transport_clients.get(owner)
        connection = owner.get_extra_info("socket")
        if client is None and connection is not None:
            client = workload.socket_clients.get(connection.fileno())
        where = "a socket" if client is None else f"socket {client + 1}"
        method = getattr(callback, "__name__", "callback")
        gloss = TRANSPORT_GLOSSES.get(method)
        return f"transport.{method} on {where}" + (f" ({gloss})" if gloss else "")
    name = getattr(callback, "__qualname__", type(callback).__name__)
    if name == "_set_result_unless_cancelled":
        # asyncio.sleep's timer uses it, and so does a new transport telling its opener it is ready.
        return "asyncio.sleep's timer sets its future" if isinstance(handle, asyncio.TimerHandle) else "a future gets its result"
    return name
