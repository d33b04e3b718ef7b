"""Slow clients cannot hold the real server's resources: half-open requests and readers that never read.

Against a real Daphne started as `make run` starts it: 500 connections that
send nothing or half a request (trickled, so an idle timer alone would never
fire) are all closed within the header timeout; 15 websocket readers that
never read are closed with 4408 "too slow" once their unsent bytes pass the
bound, they receive that code when they do read, and afterwards the server's
resident memory is back within 10 % of its baseline.
"""
from __future__ import annotations

import asyncio
import socket as socket_module
import time
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from tests.demos.helpers import (
    DEMO_PATH, demo_socket, no_run_left_running, receive_runs, receive_until_finished, start_run,
)

pytestmark = [pytest.mark.django_db(transaction=True)]

CLOSE_TOO_SLOW = 4408
HEADER_TIMEOUT_S = 5  # DEMO_REQUEST_HEADERS_TIMEOUT_S's default
# Thousands of events in a couple of seconds: far more than a reader that never reads can hold.
CHATTY_RUN = {"requests": 8000, "wait_ms": 500, "jitter_ms": 400}


def resident_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS line")


async def half_open(server, index: int) -> float | None:
    """Connect and send nothing (even index) or trickle half a request; seconds until the server closed it."""
    reader, writer = await asyncio.open_connection(server.host, server.port)
    opened = time.monotonic()
    partial = [b"GET / HTTP/1.1\r\n", b"Host: 127.0.0.1\r\n", b"X-Slow: 1\r\n", b"X-Slower: 2\r\n"]
    try:
        while time.monotonic() - opened < HEADER_TIMEOUT_S + 5:
            if index % 2 and partial:
                writer.write(partial.pop(0))
            try:
                if await asyncio.wait_for(reader.read(1024), 1.5) == b"":
                    return time.monotonic() - opened
            except TimeoutError:
                continue
        return None
    except ConnectionError:
        return time.monotonic() - opened
    finally:
        writer.close()


async def test_five_hundred_half_open_requests_are_all_closed_within_the_header_timeout(daphne_factory):
    server = daphne_factory()
    closed_after = await asyncio.gather(*(half_open(server, index) for index in range(500)))
    still_open = [index for index, seconds in enumerate(closed_after) if seconds is None]
    assert not still_open, f"{len(still_open)} connections were still open after {HEADER_TIMEOUT_S + 5} s"
    assert max(closed_after) < HEADER_TIMEOUT_S + 4  # the rule, plus the client's own polling slack
    async with demo_socket(server=server) as reader:  # and the server still serves
        accepted = await start_run(reader, "one-cook", {"requests": 2, "wait_ms": 10, "jitter_ms": 0})
        _, finished = await receive_until_finished(reader, accepted["run"])
        assert finished["status"] == "succeeded"


async def reader_that_never_reads(server):
    """A websocket whose client takes a few KiB and then stops reading."""
    raw = socket_module.socket(socket_module.AF_INET, socket_module.SOCK_STREAM)
    raw.setsockopt(socket_module.SOL_SOCKET, socket_module.SO_RCVBUF, 4096)
    raw.setblocking(False)
    await asyncio.get_running_loop().sock_connect(raw, (server.host, server.port))
    # max_queue=1: the client library stops reading from the socket after one unread message.
    connection = await connect(server.ws_url(DEMO_PATH), origin=server.url, sock=raw, max_size=None, max_queue=1,
                               open_timeout=10)
    for slot in range(2):
        await connection.send(f'{{"type": "run", "demo": "one-cook", "params": {_json(CHATTY_RUN)}, "ref": "{slot}"}}')
    return connection


def _json(value) -> str:
    import json

    return json.dumps(value)


async def fast_reader(server) -> None:
    async with demo_socket(server=server) as reader:
        first = await start_run(reader, "one-cook", CHATTY_RUN, ref="0")
        second = await start_run(reader, "one-cook", CHATTY_RUN, ref="1")
        await receive_runs(reader, [first["run"], second["run"]], timeout=60)


async def read_to_the_close(connection) -> int | None:
    """Read everything that was queued, then return the close code the client received."""
    try:
        async for _ in connection:
            pass
    except ConnectionClosed:
        pass
    received = connection.protocol.close_rcvd
    return received.code if received is not None else None


async def test_readers_that_never_read_are_closed_too_slow_and_the_memory_comes_back(daphne_factory):
    server = daphne_factory(DEMO_LOOP_RUNS_PER_ADDRESS="100")  # every reader here is 127.0.0.1
    pid = server.process.pid
    # The baseline is the server once it has served this same work to as many readers that do read:
    # what is left above it is what the readers that do not read cost.
    await asyncio.gather(*(fast_reader(server) for _ in range(15)))
    baseline = resident_kib(pid)
    readers = [await reader_that_never_reads(server) for _ in range(15)]
    await asyncio.sleep(3)  # the runs stream meanwhile; nobody reads
    codes = await asyncio.wait_for(asyncio.gather(*(read_to_the_close(reader) for reader in readers)), 30)
    assert codes == [CLOSE_TOO_SLOW] * 15, codes
    assert await no_run_left_running(timeout=15)
    deadline = time.monotonic() + 15
    while resident_kib(pid) > baseline * 1.10:
        assert time.monotonic() < deadline, f"resident memory {resident_kib(pid)} KiB against a baseline of {baseline} KiB"
        await asyncio.sleep(0.5)
