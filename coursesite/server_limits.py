"""Limits Daphne's own options cannot express, installed into its Twisted protocols at start-up.

Daphne's flags (coursesite.processes.daphne_argv) cap a websocket message's
size; autobahn, its websocket layer, then fails an oversized message (1009)
or a text frame that is not UTF-8 (1007) by default by dropping the TCP
connection, so the client sees only 1006. Here the factory is told to fail
with a close frame instead (`failByDrop=False`): the client receives the code
as sent, and the rest of the oversized frame is read and thrown away as it
arrives, never buffered.

Two more gaps, both about clients that are slow on purpose or by accident:

- **Request headers that never complete.** Twisted's HTTP channel times a
  connection out only after 60 s *of silence*, and every byte restarts that
  clock, so a client trickling half a request holds its connection for ever.
  Here each connection's request headers must have arrived within
  `DEMO_REQUEST_HEADERS_TIMEOUT_S` of its opening (or of its previous
  response ending); otherwise the connection is closed.
- **Readers that do not read.** What a websocket's peer has not read piles up
  in the Twisted transport's write buffer, without bound; the ASGI side only
  sees its `send` succeed. After each message Daphne sends, the bytes the
  peer has not taken are counted here; past `DEMO_SLOW_READER_BUFFER_BYTES`
  later messages are dropped, the socket is closed with 4408 ("too slow",
  after everything already queued), and a reader that still does not read within
  `DEMO_SLOW_READER_DRAIN_S` has its connection cut. Once such a socket has
  closed, glibc is asked to hand freed memory back (`malloc_trim`): without
  it the megabytes those buffers took could stay in the process's heap.

One more limit is about load, not about any one client:

- **A process over its capacity.** Each Daphne holds at most
  `DEMO_SOCKETS_PER_PROCESS` websockets open at once. While its loop runs
  more than `DEMO_ADMIT_MAX_LAG_MS` late, a new socket's handshake is held
  in a line for up to `DEMO_ADMIT_WAIT_S`, let in oldest first and a few at a
  time once the loop has caught up (meanwhile, and while the line is long, it
  stops accepting TCP connections, which wait in the kernel's queue rather
  than time out half-read). A handshake past the capacity, or still in line
  at its deadline, is still accepted, but in Twisted alone: no ASGI application, no channels
  consumer, no Redis lease, no run record. The socket gets one message,
  `{"type": "error", "code": "busy", "message": ..., "retry_after_s": N}`,
  and is closed with 4503. Refusing costs a fraction of admitting, so a
  burst far past the capacity is answered cleanly instead of failing at the
  transport (handshakes timing out, the liveness probe killing a loop that
  had stopped answering). `retry_after_s` is drawn between
  `DEMO_BUSY_RETRY_AFTER_S` and twice that, so the readers refused in one
  burst do not all come back in the same second.
- **Busy at the door.** Every accepted connection meets a `Doorkeeper`
  first. While the process is full, or once a connection has waited
  `DEMO_ADMIT_QUEUE_MAX_S` in the kernel's listen queue, a plain websocket
  handshake is answered there with the same `busy` and 4503, in a few
  hundred bytes and without Twisted's HTTP request or autobahn's handshake;
  anything else goes on to Daphne as always. Draining a backlog that way is
  what keeps the last readers of a huge burst from waiting past their
  client's handshake timeout.

Each wraps one method of a Daphne class; `install` checks the methods are
still there and leaves Daphne alone (returning False) if a new version moved
them. docs/adr/0014-slow-clients-limited-in-daphnes-protocols.md says why.
"""
from __future__ import annotations

import base64
import collections
import ctypes
import ctypes.util
import fcntl
import functools
import hashlib
import json
import logging
import random
import re
import socket
import struct
import sys
import termios
import time
from typing import Any, cast

from daphne import http_protocol, ws_protocol
from django.conf import settings
from twisted.internet import defer, protocol as twisted_protocol, reactor, tcp

logger = logging.getLogger("coursesite.server_limits")

CLOSE_TOO_SLOW = 4408
CLOSE_BUSY = 4503


def unsent_bytes(transport: Any) -> int:
    """Bytes written to a Twisted TCP transport that its peer has not taken yet.

    Two places hold them: the kernel's send queue (asked with SIOCOUTQ, which
    Linux spells TIOCOUTQ for sockets: bytes the peer has not acknowledged),
    and, once that is full, Twisted's own buffer (`dataBuffer` from `offset`,
    plus the writes not yet joined into it, `_tempDataLen`). Counting only the
    second would let a few megabytes sit in the kernel per socket unseen.
    """
    if transport is None:
        return 0
    buffered = getattr(transport, "dataBuffer", b"")
    in_twisted = len(buffered) - getattr(transport, "offset", 0) + getattr(transport, "_tempDataLen", 0)
    return in_twisted + _kernel_send_queue(getattr(transport, "socket", None))


def _kernel_send_queue(sock: Any) -> int:
    if sock is None:
        return 0
    try:
        return int(struct.unpack("i", fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, b"\0\0\0\0"))[0])
    except (OSError, ValueError):  # not Linux, or the socket is already gone
        return 0


# --- request headers -------------------------------------------------------------------------------

class HeaderDeadline:
    """Closes an HTTP connection whose request headers are not all in before a deadline."""

    def __init__(self, channel: Any, timeout_s: float) -> None:
        self.channel = channel
        self.timeout_s = timeout_s
        self.call: Any = None
        self.arm()
        original_headers, original_done = channel.allHeadersReceived, channel.requestDone

        def all_headers_received() -> None:
            self.disarm()
            original_headers()

        def request_done(request: Any) -> None:
            original_done(request)
            if getattr(channel, "transport", None) is not None and not getattr(channel, "_handlingRequest", False):
                self.arm()  # a kept-alive connection waits for its next request under the same rule

        channel.allHeadersReceived = all_headers_received
        channel.requestDone = request_done

    def arm(self) -> None:
        self.disarm()
        self.call = cast(Any, reactor).callLater(self.timeout_s, self.expire)

    def disarm(self) -> None:
        if self.call is not None and self.call.active():
            self.call.cancel()
        self.call = None

    def expire(self) -> None:
        self.call = None
        transport = getattr(self.channel, "transport", None)
        if transport is not None:
            logger.info("closing a connection whose request headers took over %s s", self.timeout_s)
            transport.abortConnection()


def _with_header_deadline(build_protocol: Any) -> Any:
    @functools.wraps(build_protocol)
    def build(factory: Any, addr: Any) -> Any:
        protocol = build_protocol(factory, addr)
        channel = getattr(protocol, "_channel", protocol)
        if channel is not None and hasattr(channel, "allHeadersReceived"):
            HeaderDeadline(channel, settings.DEMO_REQUEST_HEADERS_TIMEOUT_S)
        return protocol

    return build


# --- slow readers ----------------------------------------------------------------------------------

def _with_slow_reader_check(server_send: Any) -> Any:
    @functools.wraps(server_send)
    def send(protocol: Any, content: Any, binary: bool = False) -> None:
        if getattr(protocol, "closed_as_too_slow", False):
            return  # closing: what the reader has not read yet is all it will get
        server_send(protocol, content, binary)
        # Checked after the write, so a run's last message counts too; at most one message past the bound.
        # No timer is needed besides: unsent bytes only grow when something is sent (while the peer
        # does not read they stay put, when it reads they shrink), so every crossing of the bound
        # happens in a send and is seen here.
        if unsent_bytes(protocol.transport) > settings.DEMO_SLOW_READER_BUFFER_BYTES:
            protocol.closed_as_too_slow = True
            logger.warning("closing websocket of %s: over %s bytes unread", protocol.client_addr,
                           settings.DEMO_SLOW_READER_BUFFER_BYTES)
            # The close frame queues behind the unread bytes; a reader that
            # catches up sees 4408, one that never does is cut after the drain time.
            protocol.closeHandshakeTimeout = settings.DEMO_SLOW_READER_DRAIN_S
            protocol.sendClose(code=CLOSE_TOO_SLOW, reason="too slow: messages were not being read")

    return send


def _return_freed_memory() -> None:
    """Ask glibc to give the heap's free pages back to the system; nothing elsewhere."""
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc
        trim = None
    if trim is not None:
        trim(0)


# A too-slow socket's buffers are freed with it, but glibc keeps freed pages in its heap for reuse;
# a second later (once its objects are gone) they are handed back, so the memory shows it.
TRIM_DELAY_S = 1.0


def _trimming_after_a_slow_reader(on_close: Any) -> Any:
    @functools.wraps(on_close)
    def closed(protocol: Any, *args: Any, **kwargs: Any) -> None:
        on_close(protocol, *args, **kwargs)
        if getattr(protocol, "closed_as_too_slow", False):
            cast(Any, reactor).callLater(TRIM_DELAY_S, _return_freed_memory)

    return closed


# --- admission: a process over its capacity says `busy` before any work ---------------------------

# What the gate says of a new socket: let it in, refuse it now, or put it in the line.
ADMITTED, FULL, LATE = "admitted", "full", "late"


def _new_episode() -> dict[str, float]:
    """The counts of one burst at the door, logged once its line has emptied."""
    return {"waited": 0, "let in": 0, "refused": 0, "at the door": 0, "longest wait s": 0.0}


class SocketGate:
    """Counts the websockets this process holds open, watches how late its loop runs, and keeps a line.

    A new socket is refused when the process already holds its capacity. When
    the loop has lately been running later than `DEMO_ADMIT_MAX_LAG_MS` (0:
    never), a new socket waits in line instead, its handshake held, for up to
    `DEMO_ADMIT_WAIT_S`: on a machine slower or busier than the one the
    capacity was measured on, the loop's lateness is what the admitted readers
    feel first, and a burst of arrivals is what makes it late. The line is let
    in a few at a time, oldest first, whenever the loop has caught up; a
    socket still waiting at its deadline is refused. Refusing costs the
    handshake already parsed; admitting a reader the loop cannot serve on
    time would cost every reader it holds.
    """

    TICK_S = 0.05
    # Let in per tick once the loop has caught up: about what one tick's worth of loop time can start.
    ADMITS_PER_TICK = 8
    # Stop taking TCP connections while this many wait: the kernel's listen queue is the cheaper line.
    WAITING_BEFORE_PAUSE = 64

    def __init__(self) -> None:
        self.open = 0
        self.peak = 0
        self.refused = 0
        self.waited = 0
        self.lag_s = 0.0
        self._ticking = False
        self._expected = 0.0
        self.paused_ports: list[Any] = []
        self.waiting: collections.deque[tuple[Any, defer.Deferred, float]] = collections.deque()
        self.probe_ports: set[int] = set()
        self._episode = _new_episode()

    def admit(self, protocol: Any) -> str:
        """`ADMITTED`, `FULL` (refuse now), or `LATE` (the loop is behind, or others wait: join the line)."""
        max_lag_s = settings.DEMO_ADMIT_MAX_LAG_MS / 1000
        if max_lag_s > 0 and not self._ticking:
            self._ticking = True
            self._tick()
        if self.open >= settings.DEMO_SOCKETS_PER_PROCESS:
            self.refused += 1
            return FULL
        if max_lag_s > 0 and (self.current_lag_s() > max_lag_s or self.waiting):
            return LATE
        self._count_in(protocol)
        return ADMITTED

    def full_at_the_door(self) -> bool:
        """Whether a connection accepted now could only be refused: every place is taken or promised to the line."""
        return self.open + len(self.waiting) >= settings.DEMO_SOCKETS_PER_PROCESS

    def refuse_at_the_door(self) -> None:
        self.refused += 1
        self._episode["at the door"] += 1

    def current_lag_s(self) -> float:
        """The lag remembered, or more if the next tick is overdue now: a burst read in the same turn sees it."""
        return max(self.lag_s, time.monotonic() - self._expected) if self._expected else self.lag_s

    def wait_in_line(self, protocol: Any) -> defer.Deferred:
        """A Deferred that fires True once this socket is let in, or False (refused) at its deadline."""
        let_in: defer.Deferred = defer.Deferred()
        protocol.waiting_in_line = True
        protocol.joined_line_at = time.monotonic()
        self.waited += 1
        self._episode["waited"] += 1
        self.waiting.append((protocol, let_in, protocol.joined_line_at + settings.DEMO_ADMIT_WAIT_S))
        return let_in

    def leave(self, protocol: Any) -> None:
        protocol.waiting_in_line = False  # gone while waiting: the line skips it
        if getattr(protocol, "counted_by_gate", False):
            protocol.counted_by_gate = False
            self.open -= 1

    def _count_in(self, protocol: Any) -> None:
        self.open += 1
        self.peak = max(self.peak, self.open)
        protocol.counted_by_gate = True

    def let_in_from_the_line(self, max_lag_s: float) -> None:
        """Oldest first: a few let in if the loop has caught up and there is room; the expired refused."""
        let_in = 0
        now = time.monotonic()
        had_a_line = bool(self.waiting)
        while self.waiting:
            protocol, deferred, deadline = self.waiting[0]
            if not protocol.waiting_in_line:
                self.waiting.popleft()
                continue
            admit = (let_in < self.ADMITS_PER_TICK and self.lag_s < max_lag_s / 2
                     and self.open < settings.DEMO_SOCKETS_PER_PROCESS)
            if not admit and deadline > now:
                break
            self.waiting.popleft()
            protocol.waiting_in_line = False
            episode = self._episode
            episode["longest wait s"] = max(episode["longest wait s"], now - protocol.joined_line_at)
            if admit:
                self._count_in(protocol)
                let_in += 1
                episode["let in"] += 1
            else:
                self.refused += 1
                episode["refused"] += 1
            deferred.callback(admit)
        if had_a_line and not self.waiting:
            # One line per burst, not per socket: what an operator tuning DEMO_ADMIT_* wants to see.
            episode = self._episode
            left = episode["waited"] - episode["let in"] - episode["refused"]
            logger.info("admission line emptied: %d waited, %d let in, %d refused, %d left, longest wait %.2f s; "
                        "%d more refused at the door", episode["waited"], episode["let in"], episode["refused"], left,
                        episode["longest wait s"], episode["at the door"])
            self._episode = _new_episode()

    def _tick(self) -> None:
        """Every TICK_S: how late this call came; the lag remembered halves with every on-time tick."""
        now = time.monotonic()
        if self._expected:
            self.lag_s = max(now - self._expected, self.lag_s / 2)
        self._expected = now + self.TICK_S
        max_lag_s = settings.DEMO_ADMIT_MAX_LAG_MS / 1000
        self.let_in_from_the_line(max_lag_s)
        self.pace_accepting(max_lag_s)
        cast(Any, reactor).callLater(self.TICK_S, self._tick)

    def pace_accepting(self, max_lag_s: float) -> None:
        """Stop taking new TCP connections while the loop runs late or a line waits; take them again after.

        A connection accepted by a loop that is seconds behind has its request
        headers read late, and past DEMO_REQUEST_HEADERS_TIMEOUT_S it is cut:
        a transport failure. Left in the kernel's listen queue instead (and,
        past it, in the client's own SYN retries) it only waits, and once
        accepted it is read at once and admitted, put in line, or told `busy`.
        """
        if max_lag_s <= 0:
            return
        behind = self.lag_s > max_lag_s or len(self.waiting) >= self.WAITING_BEFORE_PAUSE
        caught_up = self.lag_s < max_lag_s / 2 and len(self.waiting) < self.WAITING_BEFORE_PAUSE / 2
        if not self.paused_ports and behind:
            # Never the supervisor's private probe port: a probe left unanswered through a long burst
            # would have the process killed as wedged while it serves.
            self.paused_ports = [port for port in cast(Any, reactor).getReaders() if isinstance(port, tcp.Port)
                                 and _port_number(port) not in self.probe_ports]
            for port in self.paused_ports:
                port.stopReading()
        elif self.paused_ports and caught_up:
            for port in self.paused_ports:
                if port.connected:
                    port.startReading()
            self.paused_ports = []

gate = SocketGate()


def _port_number(port: Any) -> int | None:
    try:
        return int(port.getHost().port)
    except (AttributeError, OSError):
        return None


def probe_ports_in(argv: list[str]) -> set[int]:
    """The ports of the endpoints after Daphne's first: the private probe ports
    (`coursesite.processes.daphne_argv` gives the public endpoint first)."""
    endpoints = [argv[index + 1] for index, arg in enumerate(argv[:-1]) if arg in ("-e", "--endpoint")]
    found = (re.search(r"(?:^|:)port=(\d+)", endpoint) for endpoint in endpoints[1:])
    return {int(match[1]) for match in found if match}


def busy_message() -> str:
    """The one message a refused socket gets, with a retry time spread over [base, 2 × base]."""
    base = settings.DEMO_BUSY_RETRY_AFTER_S
    return json.dumps({
        "type": "error", "code": "busy", "retry_after_s": round(random.uniform(base, 2 * base), 1),
        "message": "The site is serving as many readers as it can right now; try again in a few seconds.",
    })


def _refusing_when_full(on_connect: Any) -> Any:
    def refuse(protocol: Any, request: Any) -> None:
        # Only what Daphne's own onMessage/onClose read afterwards is set: muted, no application.
        protocol.refused_as_busy = True
        protocol.muted = True
        protocol.request = request
        protocol.client_addr = None
        protocol.server = protocol.factory.server_class
        protocol.server.protocol_connected(protocol)
        protocol.socket_opened = protocol.last_ping = time.time()
        return None  # accept the handshake here, without an application

    @functools.wraps(on_connect)
    def connect(protocol: Any, request: Any) -> Any:
        verdict = gate.admit(protocol)
        if verdict == ADMITTED:
            return on_connect(protocol, request)
        if verdict == FULL:
            return refuse(protocol, request)
        # Autobahn finishes the handshake when this Deferred fires: until then the reader waits at the door.
        return gate.wait_in_line(protocol).addCallback(
            lambda let_in: on_connect(protocol, request) if let_in else refuse(protocol, request))

    return connect


def _busy_on_open(on_open: Any) -> Any:
    @functools.wraps(on_open)
    def opened(protocol: Any) -> None:
        if not getattr(protocol, "refused_as_busy", False):
            on_open(protocol)
            return
        protocol.sendMessage(busy_message().encode(), False)
        protocol.sendClose(code=CLOSE_BUSY, reason="busy")

    return opened


# --- busy at the door: a full process, or a long wait in the kernel, answered before Twisted parses ---

# RFC 6455 §1.3: the value a server appends to the client's key before hashing it into Sec-WebSocket-Accept.
WEBSOCKET_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
# A request head longer than this is not a plain handshake; Daphne's own channel answers it.
DOOR_HEAD_BYTES = 8192
# After the close frame, how long the client has to answer it before the connection is dropped.
DOOR_CLOSE_WAIT_S = 5.0


def handshake_key(head: bytes) -> bytes | None:
    """The Sec-WebSocket-Key of a plain websocket handshake (GET, HTTP/1.1, version 13, one key of 16 bytes,
    an Origin the site's own pages would send); None for anything else, which Daphne then answers itself."""
    lines = head.split(b"\r\n")
    request = lines[0].split(b" ")
    if len(request) != 3 or request[0] != b"GET" or request[2] != b"HTTP/1.1":
        return None
    headers: dict[bytes, list[bytes]] = {}
    for line in lines[1:]:
        name, colon, value = line.partition(b":")
        if not colon or not name or name != name.strip():
            return None  # a malformed header: Twisted's parser says what is wrong with it
        headers.setdefault(name.lower(), []).append(value.strip())
    upgrade, connection = headers.get(b"upgrade", []), headers.get(b"connection", [])
    if len(upgrade) != 1 or upgrade[0].lower() != b"websocket":
        return None
    if not any(b"upgrade" in (token.strip().lower() for token in value.split(b",")) for value in connection):
        return None
    if headers.get(b"sec-websocket-version") != [b"13"]:
        return None
    keys = headers.get(b"sec-websocket-key", [])
    try:
        if len(keys) != 1 or len(base64.b64decode(keys[0], validate=True)) != 16:
            return None
    except ValueError:
        return None
    scope = {"type": "websocket", "scheme": "ws", "headers": [(name, value) for name, values in headers.items()
                                                              for value in values]}
    from coursesite.origins import origin_allowed  # imports Django's request module: only once it is set up
    return keys[0] if origin_allowed(scope) else None


def _frame(payload: bytes, opcode: int = 0x1) -> bytes:
    """One unmasked, final server frame (RFC 6455 §5.2)."""
    length = len(payload)
    if length < 126:
        return bytes([0x80 | opcode, length]) + payload
    if length < 1 << 16:
        return bytes([0x80 | opcode, 126]) + struct.pack("!H", length) + payload
    return bytes([0x80 | opcode, 127]) + struct.pack("!Q", length) + payload


def busy_at_the_door(key: bytes) -> bytes:
    """Everything a refused reader is sent: the 101 answer, the `busy` message and a 4503 close frame."""
    accept = base64.b64encode(hashlib.sha1(key + WEBSOCKET_GUID).digest())
    return (b"HTTP/1.1 101 Switching Protocols\r\nServer: daphne\r\nUpgrade: WebSocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept + b"\r\n\r\n"
            + _frame(busy_message().encode())
            + _frame(struct.pack("!H", CLOSE_BUSY) + b"busy", opcode=0x8))


class Doorkeeper(twisted_protocol.Protocol):
    """The first protocol of every accepted connection: it decides whether Daphne gets to parse it at all.

    A connection is handed straight on, before a byte is read, to the HTTP
    channel Daphne's factory builds, unless the process is full
    (`SocketGate.full_at_the_door`) or the connection has already waited
    `DEMO_ADMIT_QUEUE_MAX_S` in the kernel's listen queue (a burst far past
    what the process serves). Then the doorkeeper reads the request head
    itself and answers a plain websocket handshake in a few hundred bytes:
    the same `busy` message and 4503 close a refusal after Daphne's own
    handshake sends, without the HTTP request object, the autobahn handshake
    or the Daphne protocol that refusal costs (docs/adr/0023-busy-at-the-door.md).
    Anything else (a page, the probe, a handshake it does not recognise) is
    handed on with the bytes read so far, and Daphne answers it as always.
    """

    def __init__(self, build_channel: Any) -> None:
        self.build_channel = build_channel
        self.head = b""
        self.answered = False
        self.timer: Any = None

    def connectionMade(self) -> None:
        if not gate.full_at_the_door() and kernel_wait_s(cast(Any, self.transport)) < settings.DEMO_ADMIT_QUEUE_MAX_S:
            self._hand_over()  # room, and it has not waited long: Daphne's from the start, before a byte is read
            return
        # The same rule as every connection's request headers (HeaderDeadline), and then the close's answer.
        self.timer = cast(Any, reactor).callLater(settings.DEMO_REQUEST_HEADERS_TIMEOUT_S, self._drop)

    def dataReceived(self, data: bytes) -> None:
        transport = cast(Any, self.transport)  # Twisted's interface types do not say what a TCP transport has
        if self.answered:
            transport.loseConnection()  # the client's close frame: the closing handshake is done
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end < 0:
            if len(self.head) > DOOR_HEAD_BYTES:
                self._hand_over()
            return
        key = handshake_key(self.head[:end]) if end + 4 == len(self.head) else None
        if key is None:
            self._hand_over()
            return
        self.answered = True
        gate.refuse_at_the_door()
        transport.write(busy_at_the_door(key))
        self._cancel_timer()
        self.timer = cast(Any, reactor).callLater(DOOR_CLOSE_WAIT_S, self._drop)

    def _hand_over(self) -> None:
        self._cancel_timer()
        channel = self.build_channel()
        transport, self.transport = cast(Any, self.transport), None
        transport.protocol = channel
        channel.makeConnection(transport)
        if self.head:
            channel.dataReceived(self.head)

    def _drop(self) -> None:
        self.timer = None
        if self.transport is not None:
            cast(Any, self.transport).abortConnection()

    def _cancel_timer(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = None

    def connectionLost(self, reason: Any = None) -> None:
        self._cancel_timer()


# Linux's struct tcp_info: tcpi_last_data_recv, ms since the connection last received data (or was made).
TCP_INFO_LAST_DATA_RECV = 52


def kernel_wait_s(transport: Any) -> float:
    """How long an accepted connection has had nothing more to say: for one just taken from the kernel's listen
    queue with its request already sent, how long it waited there. 0 where the kernel does not tell."""
    try:
        info = transport.socket.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
        return float(struct.unpack_from("I", info, TCP_INFO_LAST_DATA_RECV)[0]) / 1000
    except (AttributeError, OSError, struct.error):
        return 0.0


def _doorkeeper_first(build_protocol: Any) -> Any:
    @functools.wraps(build_protocol)
    def build(factory: Any, addr: Any) -> Any:
        return Doorkeeper(lambda: build_protocol(factory, addr))

    return build


def _timeouts_unless_refused(check_timeouts: Any) -> Any:
    @functools.wraps(check_timeouts)
    def check(protocol: Any) -> None:
        if not getattr(protocol, "refused_as_busy", False):  # closing already, on autobahn's own timeout
            check_timeouts(protocol)

    return check


def _leaving_the_gate(connection_lost: Any) -> Any:
    @functools.wraps(connection_lost)
    def lost(protocol: Any, *args: Any, **kwargs: Any) -> None:
        gate.leave(protocol)
        connection_lost(protocol, *args, **kwargs)

    return lost


# Twisted accepts up to `numberAccepts` connections in one turn of the loop and raises that number by 20
# each time it took them all: under a burst, one turn took thousands, whose request headers were then
# read seconds later, past DEMO_REQUEST_HEADERS_TIMEOUT_S, and cut. A few per turn, between the
# reads of the connections already in, keeps every accepted one moving; the rest wait in the kernel.
ACCEPTS_PER_TURN = 64


def _accepting_a_few_at_a_time(do_read: Any) -> Any:
    @functools.wraps(do_read)
    def read(port: Any) -> Any:
        port.numberAccepts = min(getattr(port, "numberAccepts", ACCEPTS_PER_TURN), ACCEPTS_PER_TURN)
        return do_read(port)

    return read


# --- protocol failures announced with a close frame ------------------------------------------------

def _failing_with_a_close_frame(factory_init: Any) -> Any:
    @functools.wraps(factory_init)
    def init(factory: Any, *args: Any, **kwargs: Any) -> None:
        factory_init(factory, *args, **kwargs)
        factory.setProtocolOptions(failByDrop=False)

    return init


# (class, method name, wrapper)
PATCHES = [
    (ws_protocol.WebSocketFactory, "__init__", _failing_with_a_close_frame),
    (http_protocol.HTTPFactory, "buildProtocol", _with_header_deadline),
    (http_protocol.HTTPFactory, "buildProtocol", _doorkeeper_first),
    (ws_protocol.WebSocketProtocol, "serverSend", _with_slow_reader_check),
    (ws_protocol.WebSocketProtocol, "onClose", _trimming_after_a_slow_reader),
    (ws_protocol.WebSocketProtocol, "onConnect", _refusing_when_full),
    (ws_protocol.WebSocketProtocol, "onOpen", _busy_on_open),
    (ws_protocol.WebSocketProtocol, "check_timeouts", _timeouts_unless_refused),
    (ws_protocol.WebSocketProtocol, "connectionLost", _leaving_the_gate),
    (tcp.Port, "doRead", _accepting_a_few_at_a_time),
]


def install() -> bool:
    """Wrap Daphne's methods once; False (and nothing changed) if any is missing."""
    if not all(callable(getattr(cls, name, None)) for cls, name, _ in PATCHES):
        return False
    gate.probe_ports = probe_ports_in(sys.argv)
    for cls, name, wrap in PATCHES:
        method = getattr(cls, name)
        installed: frozenset[str] = getattr(method, "server_limits_installed", frozenset())  # one method may take two wrappers
        if wrap.__name__ not in installed:
            wrapped = wrap(method)
            wrapped.server_limits_installed = installed | {wrap.__name__}
            setattr(cls, name, wrapped)
    return True
