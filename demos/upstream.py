"""The upstream: a small server in a process of its own that answers after the delay it is asked for.

    python -m demos.upstream --port PORT

Loop-placed demos whose lesson is about waiting on I/O send their waits here,
so each wait is a real TCP round trip and Daphne's event loop really sits in
its selector until the answer's bytes arrive (an `asyncio.sleep` would only
exercise the loop's timer heap). The site's process table starts one of these
for every run to share (coursesite/processes.py); the web process finds it
through settings.DEMO_UPSTREAM_ADDRESS.

The wire protocol is one line per request and one per answer, many requests
in flight on one connection, each carrying an id the answer repeats:

    WAIT <id> <ms>\\n                  -> after <ms>: OK <id> <pid> 1\\n
    WAIT <id> <ms> <pool> <limit>\\n   -> after <ms>: OK <id> <pid> <admitted>\\n, or at once
                                       BUSY <id>\\n when <pool> already has <limit> waiting

A pool is any short token a client picks: it lets one run play a downstream
service that admits only so many calls at once, counted here rather than
pretended in the client. `pid` shows the answer came from another process.
A malformed or oversized line gets `ERR <why>\\n` and the connection closes;
past MAX_CONNECTIONS a new connection gets `FULL\\n`; past MAX_WAITING
requests in all, a request gets `FULL <id>\\n`.

Why multiplexed, like a database driver's pipelined connection or HTTP/2: a
new TCP connection per request costs the web process about half a
millisecond of CPU in Python, so 10,000 requests would spend seconds opening
sockets and the run would measure connection set-up, not overlapping waits.

The server listens on 127.0.0.1 only, holds each waiting request as one timer
on its own loop, and is bounded: connections, requests waiting, delay and
line length.

The client half (`UpstreamSession`) is what the demos import. It uses the
protocol layer rather than streams (about 2 KiB per connection against about
5.5 KiB, and no task per connection) and never blocks the loop it runs on.
"""
from __future__ import annotations

import argparse
import asyncio
import ctypes
import itertools
import os
import re
import resource
import signal
import time
from dataclasses import dataclass, field
from typing import NamedTuple

HOST = "127.0.0.1"
MAX_CONNECTIONS = 12_000  # a run opens at most CONNECTIONS_PER_RUN; lowered to fit the descriptor limit
MAX_WAITING = 60_000  # requests waiting at once, over every connection
MAX_DELAY_MS = 10_000
MAX_LINE_BYTES = 80
MAX_POOL_LIMIT = 100_000
LISTEN_BACKLOG = 1024
PR_SET_PDEATHSIG = 1
REQUEST = re.compile(rb"WAIT (\d{1,9}) (\d{1,6})(?: ([A-Za-z0-9_-]{1,32}) (\d{1,6}))?")


class LineWriter:
    """Writes lines to a transport, coalescing every line of one loop iteration into one send."""

    def __init__(self, transport: asyncio.Transport) -> None:
        self.transport = transport
        self.pending: list[bytes] = []

    def write(self, line: bytes) -> None:
        """Queue one line; it goes out with the others at the end of this loop iteration."""
        if not self.pending:
            asyncio.get_running_loop().call_soon(self.flush)
        self.pending.append(line)

    def flush(self) -> None:
        """Send every queued line (a closed transport drops them)."""
        lines, self.pending = self.pending, []
        if not self.transport.is_closing():
            self.transport.write(b"".join(lines))


class WaitServer:
    """The counts every connection shares: connections, requests waiting, and per pool."""

    def __init__(self, *, max_connections: int = MAX_CONNECTIONS) -> None:
        self.max_connections = max_connections
        self.connections = 0
        self.waiting = 0
        self.waiting_in_pool: dict[bytes, int] = {}
        self.pid = str(os.getpid()).encode()

    def protocol(self) -> WaitProtocol:
        """A protocol object for one new connection (the factory `create_server` calls)."""
        return WaitProtocol(self)


class WaitProtocol(asyncio.Protocol):
    """One connection: each line is a request, answered on the same connection after its delay."""

    def __init__(self, server: WaitServer) -> None:
        self.server = server
        self.buffer = b""
        self.writer: LineWriter | None = None
        self.timers: dict[bytes, tuple[asyncio.TimerHandle, bytes | None]] = {}

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.writer = LineWriter(transport)
        self.server.connections += 1
        if self.server.connections > self.server.max_connections:
            transport.write(b"FULL\n")
            transport.close()

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        if len(self.buffer) > MAX_LINE_BYTES:
            self._refuse(b"ERR line too long\n")
            return
        for line in lines:
            if not self._request(line.strip()):
                return

    def _request(self, line: bytes) -> bool:
        match = REQUEST.fullmatch(line)
        if match is None:
            self._refuse(b"ERR expected WAIT <id> <ms> [<pool> <limit>]\n")
            return False
        request_id, delay_ms, pool = match.group(1), int(match.group(2)), match.group(3)
        if delay_ms > MAX_DELAY_MS:
            self._refuse(b"ERR delay over %d ms\n" % MAX_DELAY_MS)
            return False
        assert self.writer is not None
        if self.server.waiting >= MAX_WAITING or request_id in self.timers:
            self.writer.write(b"FULL %s\n" % request_id)
            return True
        admitted = 1
        if pool is not None:
            in_pool = self.server.waiting_in_pool.get(pool, 0)
            if in_pool >= min(int(match.group(4)), MAX_POOL_LIMIT):
                self.writer.write(b"BUSY %s\n" % request_id)
                return True
            admitted = self.server.waiting_in_pool[pool] = in_pool + 1
        self.server.waiting += 1
        # The wait itself: a timer on this process's loop, while the client's loop waits on its socket.
        timer = asyncio.get_running_loop().call_later(delay_ms / 1000, self._answer, request_id, admitted)
        self.timers[request_id] = (timer, pool)
        return True

    def _answer(self, request_id: bytes, admitted: int) -> None:
        _, pool = self.timers.pop(request_id)
        self._release(pool)
        assert self.writer is not None
        self.writer.write(b"OK %s %s %d\n" % (request_id, self.server.pid, admitted))

    def _release(self, pool: bytes | None) -> None:
        self.server.waiting -= 1
        if pool is not None:
            left = self.server.waiting_in_pool[pool] - 1
            if left:
                self.server.waiting_in_pool[pool] = left
            else:
                del self.server.waiting_in_pool[pool]

    def _refuse(self, why: bytes) -> None:
        if not self.transport.is_closing():
            self.transport.write(why)
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.connections -= 1
        for timer, pool in self.timers.values():
            timer.cancel()
            self._release(pool)
        self.timers.clear()


# ---------------------------------------------------------------- the client half, used by demos on the web loop


# Enough connections that a small run has one per request; few enough that 200 runs stay far from the
# web process's descriptor limit (requests beyond it share a connection, pipelined).
CONNECTIONS_PER_RUN = 10


class UpstreamUnavailable(Exception):
    """The upstream could not be reached, refused the request, or fell silent."""


class Answer(NamedTuple):
    """The upstream's reply to one request: answered after its delay (`ok`), or turned away as busy.

    A named tuple rather than a frozen dataclass: a 10,000-request run makes 10,000 of them on the
    web loop, and a frozen dataclass costs about twice as much to build.
    """

    ok: bool
    admitted: int  # requests of its pool waiting upstream when it was admitted, itself included
    round_trip_s: float  # from writing the request to reading the answer


@dataclass
class UpstreamTally:
    """What one run did on the wire, counted by its own transports."""

    connections_made: int = 0
    requests_sent: int = 0
    answers_received: int = 0
    bytes_sent: int = 0
    bytes_received: int = 0
    answered_by: set[int] = field(default_factory=set)

    def describe(self) -> dict:
        """The tally as summary fields."""
        return {"connections_made": self.connections_made, "requests_sent": self.requests_sent,
                "answers_received": self.answers_received, "bytes_sent": self.bytes_sent,
                "bytes_received": self.bytes_received, "upstream_pids": sorted(self.answered_by),
                "web_process_pid": os.getpid()}


class _WaitClient(asyncio.Protocol):
    """One client connection: writes requests, resolves each one's future with its `Answer` when the answer arrives.

    A request is one future and two floats, nothing more: at 10,000 requests in flight on the web loop,
    every object the cyclic collector must track costs the run a share of each collection that passes
    over it (docs/benchmark-notes.md, "2026-12-03 (evening)").
    """

    def __init__(self, tally: UpstreamTally) -> None:
        self.tally = tally
        self.buffer = b""
        self.waiting: dict[bytes, asyncio.Future[Answer]] = {}  # request id -> its future
        self.sent_at: dict[bytes, float] = {}  # request id -> when it was written, perf_counter seconds
        self.due_at: dict[bytes, float] = {}  # request id -> when its answer is overdue
        self.last_pid = b""  # the pid in the latest answer, as sent: a new one is added to the tally
        self.closed: Exception | None = None

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.writer = LineWriter(transport)
        self.tally.connections_made += 1

    def send(self, request_id: bytes, line: bytes, sent: float, deadline: float) -> asyncio.Future[Answer]:
        """Write one request line; the future resolves to its answer (or fails with UpstreamUnavailable)."""
        answered: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()
        if self.closed is not None:
            answered.set_exception(self.closed)
            return answered
        self.waiting[request_id] = answered
        self.sent_at[request_id] = sent
        self.due_at[request_id] = deadline
        self.tally.requests_sent += 1
        self.tally.bytes_sent += len(line)
        self.writer.write(line)
        return answered

    def data_received(self, data: bytes) -> None:
        self.tally.bytes_received += len(data)
        self.buffer += data
        *lines, self.buffer = self.buffer.split(b"\n")
        arrived = time.perf_counter()
        for line in lines:
            words = line.split()
            answered = self.waiting.pop(words[1], None) if len(words) > 1 else None
            if answered is None:
                self._fail(UpstreamUnavailable(f"the upstream answered {line.decode(errors='replace')!r}"))
                return
            round_trip_s = arrived - self.sent_at.pop(words[1])
            del self.due_at[words[1]]
            if answered.done():  # cancelled meanwhile
                continue
            self.tally.answers_received += 1
            if words[0] == b"OK" and len(words) == 4:
                if words[2] != self.last_pid:
                    self.last_pid = words[2]
                    self.tally.answered_by.add(int(words[2]))
                answered.set_result(Answer(True, int(words[3]), round_trip_s))
            elif words[0] == b"BUSY":
                answered.set_result(Answer(False, 0, round_trip_s))
            else:
                answered.set_exception(UpstreamUnavailable(f"the upstream answered {line.decode(errors='replace')!r}"))

    def _fail(self, error: Exception) -> None:
        self.closed = error
        for answered in self.waiting.values():
            if not answered.done():
                answered.set_exception(error)
        self.waiting.clear()
        self.sent_at.clear()
        self.due_at.clear()
        self.transport.close()

    def fail_overdue(self, now: float) -> None:
        """Fail every request whose answer is overdue (the upstream went silent without closing)."""
        overdue = [request_id for request_id, deadline in self.due_at.items() if deadline < now]
        for request_id in overdue:
            answered, sent = self.waiting.pop(request_id), self.sent_at.pop(request_id)
            del self.due_at[request_id]
            if not answered.done():
                answered.set_exception(UpstreamUnavailable(
                    f"the upstream did not answer within {now - sent:.1f} s of the request"))

    def connection_lost(self, exc: Exception | None) -> None:
        if self.closed is None:
            self._fail(UpstreamUnavailable(f"the upstream closed the connection ({exc or 'end of stream'})"))


def upstream_address() -> tuple[str, int]:
    """Where the site's upstream listens (settings.DEMO_UPSTREAM_ADDRESS, `host:port`)."""
    from django.conf import settings

    address = getattr(settings, "DEMO_UPSTREAM_ADDRESS", "")
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise UpstreamUnavailable("no upstream is configured (DEMO_UPSTREAM_ADDRESS is empty); "
                                  "`make run` starts one, or choose the timer mode")
    return host, int(port)


class UpstreamSession:
    """One run's connections to the upstream, opened together, closed when the run ends.

        async with UpstreamSession(connections=requests) as upstream:  # at most CONNECTIONS_PER_RUN
            answer = await upstream.wait(300)

    Requests are spread over the connections in turn; each waits on its own
    future, which the connection's `data_received` resolves. One watchdog
    timer per session, rather than a timeout per request, fails answers that
    are overdue: at 10,000 requests a timeout each is a measurable cost.
    """

    CONNECT_TIMEOUT_S = 5.0
    ANSWER_GRACE_S = 5.0  # how late past its delay an answer may be before the request fails
    WATCHDOG_S = 0.5

    def __init__(self, *, connections: int, address: tuple[str, int] | None = None) -> None:
        self.connection_count = max(1, min(connections, CONNECTIONS_PER_RUN))
        self.address = address
        self.tally = UpstreamTally()
        self.clients: list[_WaitClient] = []
        self.ids = itertools.count()
        self.watchdog: asyncio.TimerHandle | None = None

    async def __aenter__(self) -> UpstreamSession:
        host, port = self.address or upstream_address()
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(self.CONNECT_TIMEOUT_S):
                opened = await asyncio.gather(*(loop.create_connection(lambda: _WaitClient(self.tally), host, port)
                                                for _ in range(self.connection_count)), return_exceptions=True)
        except TimeoutError:
            raise UpstreamUnavailable(f"the upstream at {host}:{port} did not accept a connection within "
                                      f"{self.CONNECT_TIMEOUT_S:.0f} s") from None
        failures = [result for result in opened if isinstance(result, BaseException)]
        self.clients = [client for result in opened if not isinstance(result, BaseException) for client in [result[1]]]
        if failures:
            await self.__aexit__(None, None, None)
            error = failures[0]
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            raise UpstreamUnavailable(f"cannot reach the upstream at {host}:{port}: {reason}; "
                                      "is it running? (`make run` starts it)") from None
        self._watch()
        return self

    def _watch(self) -> None:
        now = time.perf_counter()
        for client in self.clients:
            client.fail_overdue(now)
        self.watchdog = asyncio.get_running_loop().call_later(self.WATCHDOG_S, self._watch)

    async def __aexit__(self, *exc_info) -> None:
        if self.watchdog is not None:
            self.watchdog.cancel()
        for client in self.clients:
            client.transport.close()

    def wait(self, wait_ms: float, *, pool: str | None = None, limit: int | None = None) -> asyncio.Future[Answer]:
        """Ask the upstream to answer after `wait_ms`; await the returned future for the answer.

        With `pool` and `limit`, the upstream turns the request away
        (`Answer.ok` false) while `limit` requests of that pool are waiting.
        The future fails with UpstreamUnavailable if the connection fails or
        the answer is overdue.
        """
        # Every line of this runs once per request, 10,000 times in a large run on the web loop. It returns
        # the connection's future itself rather than being a coroutine that awaits it: one object fewer per
        # request for the collector, and the answer is parsed where it arrives.
        request_id = next(self.ids)
        client = self.clients[request_id % len(self.clients)]
        key = b"%d" % request_id
        if pool is None:
            line = b"WAIT %s %d\n" % (key, round(wait_ms))
        elif limit is None:
            raise ValueError("a pool needs a limit")
        else:
            line = b"WAIT %s %d %s %d\n" % (key, round(wait_ms), pool.encode(), limit)
        sent = time.perf_counter()
        return client.send(key, line, sent, sent + wait_ms / 1000 + self.ANSWER_GRACE_S)


# ---------------------------------------------------------------- the server program


def _guard_process() -> None:
    """Raise the descriptor limit to the hard limit; die with the process that started us (Linux)."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


async def serve(port: int) -> None:
    """Listen on 127.0.0.1:`port` until cancelled or sent SIGTERM."""
    soft_limit, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    wait_server = WaitServer(max_connections=min(MAX_CONNECTIONS, soft_limit - 64))
    loop = asyncio.get_running_loop()
    server = await loop.create_server(wait_server.protocol, HOST, port, backlog=LISTEN_BACKLOG, reuse_address=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    print(f"upstream listening on {HOST}:{port} (pid {os.getpid()})", flush=True)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> None:
    """Parse the command line and serve."""
    parser = argparse.ArgumentParser(prog="python -m demos.upstream", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    _guard_process()
    asyncio.run(serve(args.port))


if __name__ == "__main__":
    main()
