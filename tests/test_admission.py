"""A web process past its capacity answers new sockets with a clean `busy`, and takes them back later.

Against a real Daphne started with DEMO_SOCKETS_PER_PROCESS=2: two readers
are admitted and stream their runs to the end; a third gets, on an accepted
socket, one `error` message with code `busy` and a `retry_after_s`, then a
4503 close (not a transport failure, and no work done for it: no lease in
Redis); once a place is free and it has waited `retry_after_s`, it is admitted.
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import os
import re
import signal
import socket
import struct

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from coursesite.server_limits import CLOSE_BUSY
from demos.limits import address_lease_count
from tests.demos.helpers import DEMO_PATH

pytestmark = [pytest.mark.django_db(transaction=True)]

READER = "127.0.0.61"  # an address of this test's own, so its lease count is its own
RETRY_AFTER_S = 1.0
# Long enough that both admitted runs are still streaming when the third reader knocks.
RUN = {"type": "run", "demo": "one-cook", "ref": "r",
       "params": {"requests": 3, "wait_ms": 800, "jitter_ms": 0, "mode": "concurrent"}}


async def open_socket(server, address: str = READER):
    return await connect(server.ws_url(DEMO_PATH), origin=server.url, local_addr=(address, 0), open_timeout=20,
                         compression=None)


async def run_to_the_end(socket) -> tuple[str, int, list[int]]:
    """Send a run and read until `finished`: its status, how many events arrived and the batches' seqs."""
    await socket.send(json.dumps(RUN))
    events, seqs = 0, []
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), timeout=30))
        if message["type"] == "events":
            events += len(message["events"])
            seqs.append(message["seq"])
        elif message["type"] == "finished":
            return message["status"], events, seqs
        elif message["type"] == "error":
            return "error:" + message["code"], events, seqs


async def refused(socket) -> dict:
    """The one message a refused socket gets, after checking the socket is then closed with 4503."""
    message = json.loads(await asyncio.wait_for(socket.recv(), timeout=20))
    with pytest.raises(ConnectionClosed) as closed:
        await asyncio.wait_for(socket.recv(), timeout=20)
    assert closed.value.rcvd is not None and closed.value.rcvd.code == CLOSE_BUSY
    return message


async def test_a_reader_past_the_process_capacity_is_told_busy_and_admitted_when_it_retries(daphne_factory):
    server = daphne_factory(DEMO_SOCKETS_PER_PROCESS="2", DEMO_BUSY_RETRY_AFTER_S=str(RETRY_AFTER_S),
                            DEMO_SOCKETS_PER_IP="10", DEMO_LOOP_RUNS_PER_ADDRESS="10")
    first, second = await open_socket(server), await open_socket(server)
    runs = [asyncio.create_task(run_to_the_end(socket)) for socket in (first, second)]
    try:
        third = await open_socket(server)  # the handshake itself succeeds: busy is said on the socket
        answer = await refused(third)
        assert answer["type"] == "error" and answer["code"] == "busy", answer
        assert answer["message"]
        assert RETRY_AFTER_S <= answer["retry_after_s"] <= 2 * RETRY_AFTER_S
        # Refused before any work: only the two admitted sockets hold a place in the address's cap.
        assert await address_lease_count("demo-sockets", READER) == 2

        for status, events, seqs in await asyncio.gather(*runs):
            assert status == "succeeded"
            assert events > 0
            assert seqs == list(range(len(seqs)))  # every batch, in order
        await first.close()

        await asyncio.sleep(answer["retry_after_s"])
        again = await open_socket(server)
        try:
            status, events, _ = await run_to_the_end(again)
            assert (status, events > 0) == ("succeeded", True)
        finally:
            await again.close()
    finally:
        for task in runs:
            task.cancel()
        await first.close()
        await second.close()


class Protocol:
    """Stands in for a Daphne websocket protocol: the gate only marks it."""


def late_gate(settings, *, capacity: int = 100, max_lag_ms: int = 100, wait_s: float = 3.0):
    from coursesite.server_limits import SocketGate

    settings.DEMO_SOCKETS_PER_PROCESS, settings.DEMO_ADMIT_MAX_LAG_MS = capacity, max_lag_ms
    settings.DEMO_ADMIT_WAIT_S = wait_s
    gate = SocketGate()
    gate._ticking = True  # no reactor here: the lateness is set by hand and the line let in by hand
    return gate


def test_a_socket_arriving_while_the_loop_runs_late_waits_in_line_until_the_loop_catches_up(settings):
    from coursesite.server_limits import ADMITTED, LATE

    gate = late_gate(settings)
    gate.lag_s = 0.02
    assert gate.admit(Protocol()) == ADMITTED
    gate.lag_s = 0.3
    waiting = Protocol()
    assert gate.admit(waiting) == LATE
    answers: list[bool] = []
    gate.wait_in_line(waiting).addCallback(answers.append)
    gate.let_in_from_the_line(0.1)
    assert answers == []  # still late: it waits
    gate.lag_s = 0.03  # caught up (under half the bound)
    assert gate.admit(Protocol()) == LATE  # a newcomer queues behind the one already waiting
    gate.let_in_from_the_line(0.1)
    assert answers == [True]
    assert (gate.open, gate.refused, gate.waited) == (2, 0, 1)


def test_the_line_is_let_in_oldest_first_a_few_at_a_time(settings):
    gate = late_gate(settings)
    gate.lag_s = 0.3
    order: list[int] = []
    for index in range(gate.ADMITS_PER_TICK + 3):
        gate.wait_in_line(Protocol()).addCallback(lambda let_in, index=index: order.append(index))
    gate.lag_s = 0.0
    gate.let_in_from_the_line(0.1)
    assert order == list(range(gate.ADMITS_PER_TICK))
    gate.let_in_from_the_line(0.1)
    assert order == list(range(gate.ADMITS_PER_TICK + 3))


def test_a_socket_still_in_line_at_its_deadline_is_refused_and_one_gone_is_skipped(settings):
    gate = late_gate(settings, wait_s=0.0)
    gate.lag_s = 0.3
    gone, patient = Protocol(), Protocol()
    answers: list[tuple[str, bool]] = []
    gate.wait_in_line(gone).addCallback(lambda let_in: answers.append(("gone", let_in)))
    gate.wait_in_line(patient).addCallback(lambda let_in: answers.append(("patient", let_in)))
    gate.leave(gone)  # its connection closed while it waited
    gate.let_in_from_the_line(0.1)
    assert answers == [("patient", False)]
    assert (gate.open, gate.refused, len(gate.waiting)) == (0, 1, 0)


def test_a_process_at_its_capacity_refuses_at_once_and_the_line_waits_for_room(settings):
    from coursesite.server_limits import FULL, LATE

    gate = late_gate(settings, capacity=1)
    gate.lag_s = 0.3
    answers: list[bool] = []
    gate.wait_in_line(Protocol()).addCallback(answers.append)
    gate.lag_s = 0.0
    assert gate.admit(Protocol()) == LATE  # the line comes first
    gate.let_in_from_the_line(0.1)
    assert answers == [True] and gate.open == 1
    assert gate.admit(Protocol()) == FULL
    settings.DEMO_ADMIT_MAX_LAG_MS = 0  # the lag check switched off: capacity alone decides
    assert gate.admit(Protocol()) == FULL
    assert gate.refused == 2


def test_a_process_whose_loop_runs_late_stops_accepting_until_it_catches_up(settings):
    """While late it takes no TCP connection (they wait in the kernel's queue); caught up, it takes them again."""
    from twisted.internet import protocol, reactor

    from coursesite.server_limits import SocketGate

    port = reactor.listenTCP(0, protocol.Factory(), interface="127.0.0.1")
    gate = SocketGate()
    try:
        assert port in reactor.getReaders()
        gate.lag_s = 0.3
        gate.pace_accepting(0.2)
        assert port not in reactor.getReaders()
        gate.lag_s = 0.15  # under the bound, not yet under half of it: still paused
        gate.pace_accepting(0.2)
        assert port not in reactor.getReaders()
        gate.lag_s = 0.05
        gate.pace_accepting(0.2)
        assert port in reactor.getReaders()

        # On time, but a long line at the door: the kernel's queue is the cheaper place to wait.
        for _ in range(gate.WAITING_BEFORE_PAUSE):
            gate.wait_in_line(Protocol())
        gate.pace_accepting(0.2)
        assert port not in reactor.getReaders()
        while len(gate.waiting) >= gate.WAITING_BEFORE_PAUSE // 2:
            gate.waiting.popleft()
        gate.pace_accepting(0.2)
        assert port in reactor.getReaders()
    finally:
        port.stopListening()


async def test_a_process_out_of_redis_connections_is_busy_not_unavailable(settings):
    """The pool's own "no connection in time" is overload (busy); Redis refusing connections is not."""
    from redis.asyncio import BlockingConnectionPool
    from redis.exceptions import ConnectionError as RedisConnectionError

    from demos.supervisor import pool_exhausted

    pool = BlockingConnectionPool.from_url(settings.REDIS_URL, max_connections=1, timeout=0.2)
    held = await pool.get_connection()
    try:
        with pytest.raises(RedisConnectionError) as waited:
            await pool.get_connection()
        assert pool_exhausted(waited.value)
    finally:
        await pool.release(held)
        await pool.disconnect()
    nowhere = BlockingConnectionPool.from_url("redis://127.0.0.1:1/0", max_connections=1, timeout=0.2)
    with pytest.raises(RedisConnectionError) as refused:
        connection = await nowhere.get_connection()
        await connection.connect()
    assert not pool_exhausted(refused.value)


async def readers_knocking_while_the_loop_is_stopped(server, count: int, stopped_s: float = 1.0) -> list:
    """`count` readers whose handshakes Daphne reads just as its loop comes back `stopped_s` late.

    Their TCP connections are made (and accepted) first; then Daphne is
    stopped (SIGSTOP), their handshake requests are sent, and it is let go
    on: it reads them in its first turn, with its loop late by the time the
    stop took, which is what a burst of arrivals does to it, without
    depending on how fast this machine is.
    """
    connections = [socket.create_connection((server.host, server.port), source_address=(READER, 0))
                   for _ in range(count)]
    await asyncio.sleep(0.5)  # accepted by Daphne's idle loop
    server.process.send_signal(signal.SIGSTOP)
    try:
        knocking = [asyncio.ensure_future(connect(server.ws_url(DEMO_PATH), origin=server.url, sock=connection,
                                                  open_timeout=20, compression=None))
                    for connection in connections]
        await asyncio.sleep(stopped_s)
    finally:
        server.process.send_signal(signal.SIGCONT)
    return await asyncio.gather(*knocking)


def line_totals(log: str) -> dict[str, int]:
    """The admission lines Daphne logged, summed (a burst read over two turns may make two lines)."""
    totals = {"waited": 0, "let in": 0, "refused": 0, "left": 0}
    for found in re.finditer(r"admission line emptied: (\d+) waited, (\d+) let in, (\d+) refused, (\d+) left", log):
        for key, value in zip(totals, found.groups(), strict=True):
            totals[key] += int(value)
    return totals


async def test_readers_arriving_while_the_loop_runs_late_wait_at_the_door_and_are_let_in(daphne_factory):
    server = daphne_factory(DEMO_ADMIT_MAX_LAG_MS="100", DEMO_ADMIT_WAIT_S="5",
                            DEMO_SOCKETS_PER_IP="10", DEMO_LOOP_RUNS_PER_ADDRESS="10")
    first = await open_socket(server)  # the gate starts watching the loop with its first socket
    mark = server.log_mark()
    sockets = [first]
    try:
        sockets += await readers_knocking_while_the_loop_is_stopped(server, 3)
        for status, events, seqs in await asyncio.gather(*(run_to_the_end(socket) for socket in sockets)):
            assert (status, events > 0, seqs == list(range(len(seqs)))) == ("succeeded", True, True)
        assert line_totals(server.log_since(mark)) == {"waited": 3, "let in": 3, "refused": 0, "left": 0}
    finally:
        for socket in sockets:
            await socket.close()


async def test_readers_still_at_the_door_when_their_wait_is_up_are_told_busy(daphne_factory):
    server = daphne_factory(DEMO_ADMIT_MAX_LAG_MS="100", DEMO_ADMIT_WAIT_S="0", DEMO_BUSY_RETRY_AFTER_S="1",
                            DEMO_SOCKETS_PER_IP="10", DEMO_LOOP_RUNS_PER_ADDRESS="10")
    first = await open_socket(server)
    mark = server.log_mark()
    try:
        late = await readers_knocking_while_the_loop_is_stopped(server, 2)
        for socket in late:
            answer = await refused(socket)
            assert (answer["code"], 1 <= answer["retry_after_s"] <= 2) == ("busy", True), answer
        assert line_totals(server.log_since(mark)) == {"waited": 2, "let in": 0, "refused": 2, "left": 0}
        status, events, _ = await run_to_the_end(first)  # the reader already in is served throughout
        assert (status, events > 0) == ("succeeded", True)
    finally:
        await first.close()


# --- busy at the door: a connection accepted while the process is full ------------------------------

AT_THE_DOOR = "127.0.0.62"  # apart from READER: the leases the tests above leave expire on their own time

def _handshake(server, *, version: bytes = b"13") -> tuple[bytes, bytes]:
    """A plain websocket handshake request for the demo path, and the Sec-WebSocket-Accept it calls for."""
    key = base64.b64encode(os.urandom(16))
    request = (b"GET " + DEMO_PATH.encode() + b" HTTP/1.1\r\nHost: " + f"{server.host}:{server.port}".encode()
               + b"\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: " + key
               + b"\r\nSec-WebSocket-Version: " + version + b"\r\nOrigin: " + server.url.encode() + b"\r\n\r\n")
    accept = base64.b64encode(hashlib.sha1(key + b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11").digest())
    return request, accept


async def _read_frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    first, second = await reader.readexactly(2)
    assert not second & 0x80, "a server's frames are never masked"
    length = second & 0x7F
    if length == 126:
        length = struct.unpack("!H", await reader.readexactly(2))[0]
    elif length == 127:
        length = struct.unpack("!Q", await reader.readexactly(8))[0]
    return first, await reader.readexactly(length)


async def test_a_full_process_says_busy_to_a_handshake_sent_in_pieces_and_still_serves_pages(daphne_factory):
    server = daphne_factory(DEMO_SOCKETS_PER_PROCESS="1", DEMO_SOCKETS_PER_IP="10")
    held = await open_socket(server, AT_THE_DOOR)  # the one place
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port, local_addr=(AT_THE_DOOR, 0))
        request, accept = _handshake(server)
        for start in range(0, len(request), 7):  # a head that arrives over many reads is still one handshake
            writer.write(request[start:start + 7])
            await writer.drain()
            await asyncio.sleep(0.002)
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)).decode("latin1")
        assert head.startswith("HTTP/1.1 101 "), head
        headers = dict(line.split(": ", 1) for line in head.split("\r\n")[1:] if line)
        assert {name.lower(): value for name, value in headers.items()}["sec-websocket-accept"] == accept.decode(), head
        opcode, payload = await asyncio.wait_for(_read_frame(reader), timeout=10)
        message = json.loads(payload)
        assert opcode == 0x81 and message["code"] == "busy" and message["retry_after_s"] > 0, message
        opcode, payload = await asyncio.wait_for(_read_frame(reader), timeout=10)
        assert opcode == 0x88 and struct.unpack("!H", payload[:2])[0] == CLOSE_BUSY, payload
        mask = os.urandom(4)
        code = struct.pack("!H", CLOSE_BUSY)
        writer.write(bytes([0x88, 0x80 | len(code)]) + mask + bytes(b ^ mask[i % 4] for i, b in enumerate(code)))
        assert await asyncio.wait_for(reader.read(), timeout=10) == b""  # closed once the close was answered
        writer.close()
        assert await address_lease_count("demo-sockets", AT_THE_DOOR) == 1  # nothing held for the refused one

        # A page, on the same full process: handed to Daphne's own HTTP channel, bytes and all.
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(f"GET / HTTP/1.1\r\nHost: {server.host}:{server.port}\r\nConnection: close\r\n\r\n".encode())
        page = await asyncio.wait_for(reader.read(), timeout=20)
        writer.close()
        assert page.startswith(b"HTTP/1.1 200 ") and b"</html>" in page, page[:200]
    finally:
        await held.close()


async def test_at_the_door_a_handshake_it_does_not_know_gets_daphne_s_answer_and_a_half_sent_head_is_cut(
        daphne_factory):
    server = daphne_factory(DEMO_SOCKETS_PER_PROCESS="1", DEMO_SOCKETS_PER_IP="10", DEMO_REQUEST_HEADERS_TIMEOUT_S="1")
    held = await open_socket(server, AT_THE_DOOR)
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(_handshake(server, version=b"99")[0])  # not a version it answers: autobahn's own 400
        answer = await asyncio.wait_for(reader.read(), timeout=10)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 400 WebSocket version 99 not supported"), answer[:200]

        reader, writer = await asyncio.open_connection(server.host, server.port)
        writer.write(b"GET " + DEMO_PATH.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # and no more
        try:  # cut at the header deadline, as any connection is (aborted: a reset, or an end of stream)
            assert await asyncio.wait_for(reader.read(), timeout=10) == b""
        except ConnectionResetError:
            pass
        writer.close()
    finally:
        await held.close()


def test_the_door_answers_only_a_plain_same_origin_handshake_and_leaves_the_rest_to_daphne():
    from coursesite.server_limits import handshake_key

    key = base64.b64encode(b"k" * 16)
    lines = [b"GET /ws/demos/ HTTP/1.1", b"Host: 127.0.0.1:8000", b"Upgrade: websocket",
             b"Connection: keep-alive, Upgrade", b"Sec-WebSocket-Key: " + key, b"Sec-WebSocket-Version: 13",
             b"Origin: http://127.0.0.1:8000"]

    def head(*, drop: bytes = b"", swap: tuple[bytes, bytes] | None = None, extra: list[bytes] | None = None) -> bytes:
        chosen = [line for line in lines if not (drop and line.startswith(drop))]
        if swap:
            chosen = [swap[1] if line.startswith(swap[0]) else line for line in chosen]
        return b"\r\n".join(chosen + (extra or []))

    assert handshake_key(head()) == key
    assert handshake_key(head(drop=b"Connection")) is None
    assert handshake_key(head(drop=b"Origin")) is None  # Daphne's own path answers 403, as always
    assert handshake_key(head(swap=(b"Origin", b"Origin: http://elsewhere.example"))) is None
    assert handshake_key(head(swap=(b"Origin", b"Origin: http://127.0.0.1:9000"))) is None  # another port
    assert handshake_key(head(swap=(b"Sec-WebSocket-Version", b"Sec-WebSocket-Version: 8"))) is None
    assert handshake_key(head(swap=(b"Sec-WebSocket-Key", b"Sec-WebSocket-Key: c2hvcnQ="))) is None  # 5 bytes
    assert handshake_key(head(swap=(b"GET", b"POST /ws/demos/ HTTP/1.1"))) is None
    assert handshake_key(head(extra=[b"Sec-WebSocket-Key: " + key])) is None  # two keys
    assert handshake_key(head(extra=[b"Bad Header : x"])) is None  # for Twisted's parser to refuse


async def test_a_handshake_that_waited_in_the_kernel_s_queue_past_its_bound_is_told_busy_at_the_door(daphne_factory):
    # Daphne stopped for 2 s with a handshake sent: the connection waits in the kernel's listen queue. Past
    # DEMO_ADMIT_QUEUE_MAX_S (1 s here) it is told busy at the door when it is taken, not let in.
    server = daphne_factory(DEMO_ADMIT_QUEUE_MAX_S="1", DEMO_SOCKETS_PER_IP="10")
    server.process.send_signal(signal.SIGSTOP)
    try:
        reader, writer = await asyncio.open_connection(server.host, server.port, local_addr=(AT_THE_DOOR, 0))
        writer.write(_handshake(server)[0])
        await writer.drain()
        await asyncio.sleep(2)
    finally:
        server.process.send_signal(signal.SIGCONT)
    head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)).decode("latin1")
    assert head.startswith("HTTP/1.1 101 "), head
    opcode, payload = await asyncio.wait_for(_read_frame(reader), timeout=10)
    assert opcode == 0x81 and json.loads(payload)["code"] == "busy", payload
    writer.close()
    # One that has not waited is let in as ever, once the loop has caught up.
    async with connect(server.ws_url(DEMO_PATH), origin=server.url, local_addr=(AT_THE_DOOR, 0), open_timeout=20,
                       compression=None) as socket_now:
        status, events, _ = await run_to_the_end(socket_now)
        assert (status, events > 0) == ("succeeded", True)


def test_a_late_loop_still_answers_the_supervisor_s_probe_port(settings):
    """The probe port (the endpoint after the public one in Daphne's argv) keeps accepting through a pause:
    unanswered for a long burst, the probe would have the serving process killed as wedged."""
    from twisted.internet import protocol, reactor

    from coursesite.processes import daphne_argv
    from coursesite.server_limits import SocketGate, probe_ports_in

    public = reactor.listenTCP(0, protocol.Factory(), interface="127.0.0.1")
    probe = reactor.listenTCP(0, protocol.Factory(), interface="127.0.0.1")
    gate = SocketGate()
    try:
        gate.probe_ports = probe_ports_in(["daphne", *daphne_argv("127.0.0.1", 8000, listen_fd=3,
                                                                  probe_port=probe.getHost().port)])
        assert gate.probe_ports == {probe.getHost().port}
        assert probe_ports_in(["daphne", *daphne_argv("127.0.0.1", 8000)]) == set()  # no probe endpoint
        gate.lag_s = 0.3
        gate.pace_accepting(0.2)
        assert public not in reactor.getReaders() and probe in reactor.getReaders()
        gate.lag_s = 0.0
        gate.pace_accepting(0.2)
        assert public in reactor.getReaders() and probe in reactor.getReaders()
    finally:
        public.stopListening()
        probe.stopListening()
