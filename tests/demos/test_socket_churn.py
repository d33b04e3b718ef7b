"""10,000 readers coming and going leave no runs, groups, counters or memory behind.

Against a real Daphne (started as `make run` starts it), with a hundred
readers at a time, so what is measured is the server's own memory.

Each reader that only comes and goes is a minimal websocket client written
here: the real opening handshake (`101 Switching Protocols` checked) and a
real closing handshake (a masked close frame, then the server's close and
its end of the connection), no more. The `websockets` library costs this
process about three times the CPU per connection, and on two cores that CPU
was taken from the Daphne being measured; every hundredth reader, the one
that starts a run and leaves in the middle of it, still uses `websockets`.
"""
import asyncio
import base64
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import psutil
import pytest
import websockets
from redis import Redis

from bench.site import BASE_DIR, start_site

pytestmark = pytest.mark.slow

CYCLES = 10_000
AT_ONCE = 100
RUN_EVERY = 100  # every 100th reader starts a run and leaves in the middle of it


def _close_frame() -> bytes:
    """A client's close frame with status 1000, masked as RFC 6455 requires of clients."""
    mask = os.urandom(4)
    payload = (1000).to_bytes(2, "big")
    return b"\x88\x82" + mask + bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))


async def _come_and_go(host: str, port: int, origin: str) -> None:
    """Open a websocket to /ws/demos/ and close it cleanly, waiting for the server's side of the close."""
    reader, writer = await asyncio.open_connection(host, port)
    try:
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET /ws/demos/ HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                      f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\nOrigin: {origin}\r\n\r\n").encode())
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
        assert head.startswith(b"HTTP/1.1 101 "), head[:200]
        writer.write(_close_frame())
        rest = await asyncio.wait_for(reader.read(), 30)  # the server's close frame, then its end of the stream
        assert rest[:1] == b"\x88", rest[:20]
    finally:
        writer.close()


async def _start_a_run_and_leave(ws_url: str, origin: str) -> None:
    async with websockets.connect(ws_url, origin=origin, open_timeout=30) as socket:
        await socket.send(json.dumps({"type": "run", "demo": "one-cook", "params": {"requests": 3, "wait_ms": 500}, "ref": "r"}))
        assert json.loads(await asyncio.wait_for(socket.recv(), 10))["type"] == "accepted"


async def _readers(site_url: str, count: int, first_index: int) -> None:
    """`count` readers, AT_ONCE of them connected at any moment (a new one starts as one leaves)."""
    host, port = site_url.removeprefix("http://").split(":")
    ws_url = site_url.replace("http://", "ws://") + "/ws/demos/"
    slots = asyncio.Semaphore(AT_ONCE)

    async def one(index: int) -> None:
        async with slots:
            if index % RUN_EVERY == 0:
                await _start_a_run_and_leave(ws_url, site_url)
            else:
                await _come_and_go(host, int(port), site_url)

    await asyncio.gather(*(one(first_index + offset) for offset in range(count)))


def _left_behind(site) -> tuple[list, int, int]:
    """(channel groups, sockets counted per address, runs counted in flight), as Redis holds them."""
    redis = Redis.from_url(site.services["REDIS_URL"])
    groups = list(redis.scan_iter(match="coursesite:asgi:group:*"))
    sockets = sum(redis.zcard(key) for key in redis.scan_iter(match="*demo-leases:demo-sockets:*"))  # one lease a socket
    in_flight = sum(redis.zcard(key) for key in redis.scan_iter(match="*demo-inflight:*"))
    return groups, sockets, in_flight


def _settle(site, timeout_s: float = 15) -> tuple[list, int, int]:
    """Wait (at most `timeout_s`) until the last consumers have finished closing; what is left then.

    Well inside DEMO_ADDRESS_LEASE_S, so a lease a consumer failed to give back is still counted here.
    """
    deadline = time.monotonic() + timeout_s
    while (left := _left_behind(site)) != ([], 0, 0) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)  # the last disconnect's own frees, after its counters
    return left


# A Daphne kept this busy on purpose answers the supervisor's liveness probe late: given more time
# here, so the churn is not cut short by a restart (supervision has its own tests).
SITE_ENV = {"DEBUG": "0", "SECRET_KEY": "churn-test-" + "k" * 50, "DEMO_SOCKETS_PER_IP": "1000",
            "SUPERVISOR_PROBE_TIMEOUT_S": "5", "SUPERVISOR_PROBE_FAILURES": "6"}


def test_ten_thousand_connect_disconnect_cycles_leave_nothing_behind():
    # Under var/ like the benchmarks' sites: pytest makes its temporary root private whenever any
    # pytest starts, which would lock PostgreSQL's user out of a data directory there.
    root = Path(tempfile.mkdtemp(prefix="churn-", dir=BASE_DIR / "var"))
    site = start_site(root / "var", extra_env=SITE_ENV)
    try:
        daphne = psutil.Process(site.pids["daphne"])
        # Warm up pools, caches, imports and the allocator's high-water mark first
        # (2,500 cycles left it still rising: 1-6 % growth after; 5,000: 0-2 %).
        asyncio.run(_readers(site.url, 5_000, first_index=1))
        _settle(site)
        baseline = daphne.memory_info().rss
        started = time.monotonic()
        asyncio.run(_readers(site.url, CYCLES, first_index=0))
        elapsed = time.monotonic() - started
        left = _settle(site)
        growth = (daphne.memory_info().rss - baseline) / baseline
        assert growth < 0.05, f"Daphne's resident memory grew {growth:.1%} over {CYCLES} cycles ({elapsed:.0f} s)"
        runs = json.loads(_get(site.url + "/healthz"))  # still healthy
        assert runs["database"] == "ok"
        assert left == ([], 0, 0)
        assert _running_runs(site) == 0
    finally:
        site.stop()
        shutil.rmtree(root, ignore_errors=True)


def _get(url: str) -> str:
    from urllib.request import urlopen

    return urlopen(url, timeout=10).read().decode()


def _running_runs(site) -> int:
    import psycopg

    url = site.services["DATABASE_URL"]
    with psycopg.connect(url) as connection:
        return connection.execute("SELECT count(*) FROM demos_run WHERE status = 'running'").fetchone()[0]
