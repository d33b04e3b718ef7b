"""A web process past its capacity answers new sockets with a clean `busy`, and takes them back later.

Against a real Daphne started with DEMO_SOCKETS_PER_PROCESS=2: two readers
are admitted and stream their runs to the end; a third gets, on an accepted
socket, one `error` message with code `busy` and a `retry_after_s`, then a
4503 close (not a transport failure, and no work done for it: no lease in
Redis); once a place is free and it has waited `retry_after_s`, it is admitted.
"""
from __future__ import annotations

import asyncio
import json
import re
import signal
import socket

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


async def open_socket(server):
    return await connect(server.ws_url(DEMO_PATH), origin=server.url, local_addr=(READER, 0), open_timeout=20,
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
