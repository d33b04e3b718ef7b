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


def test_a_process_whose_loop_runs_late_admits_no_new_socket(settings):
    from coursesite.server_limits import SocketGate

    settings.DEMO_SOCKETS_PER_PROCESS, settings.DEMO_ADMIT_MAX_LAG_MS = 100, 100
    gate = SocketGate()
    gate._ticking = True  # no reactor here: the lateness is set by hand
    gate.lag_s = 0.02
    assert gate.admit(Protocol())
    gate.lag_s = 0.3
    assert not gate.admit(Protocol())
    settings.DEMO_ADMIT_MAX_LAG_MS = 0  # the check switched off
    assert gate.admit(Protocol())
    assert (gate.open, gate.refused) == (2, 1)


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
