"""The one way the site makes Redis clients.

`async_redis()` gives each event loop one client on a bounded, blocking pool
(tests run several loops; Daphne runs one; a worker run's pump thread has its
own). `sync_redis()` gives each process one synchronous client, made again
after a fork, since prefork children must not share their parent's sockets.
"""
from __future__ import annotations

import asyncio
import os
import weakref

from django.conf import settings
from redis import Redis
from redis.asyncio import BlockingConnectionPool
from redis.asyncio import Redis as AsyncRedis

# A burst of a thousand readers queues for these instead of opening a thousand connections.
MAX_CONNECTIONS_PER_LOOP = 64
CONNECT_TIMEOUT_S = 2
COMMAND_TIMEOUT_S = 5

_async_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, AsyncRedis] = weakref.WeakKeyDictionary()
_sync_client: Redis | None = None
_sync_client_pid: int | None = None


def async_redis() -> AsyncRedis:
    """The running event loop's client (made on first use)."""
    loop = asyncio.get_running_loop()
    client = _async_clients.get(loop)
    if client is None:
        pool = BlockingConnectionPool.from_url(
            settings.REDIS_URL, max_connections=MAX_CONNECTIONS_PER_LOOP, timeout=COMMAND_TIMEOUT_S,
            socket_connect_timeout=CONNECT_TIMEOUT_S, socket_timeout=COMMAND_TIMEOUT_S,
        )
        client = AsyncRedis(connection_pool=pool)
        _async_clients[loop] = client
    return client


async def close_async_redis() -> None:
    """Close the running loop's client, for loops that end before the process does."""
    client = _async_clients.pop(asyncio.get_running_loop(), None)
    if client is not None:
        await client.aclose()


def sync_redis() -> Redis:
    """This process's synchronous client (made again in a forked child)."""
    global _sync_client, _sync_client_pid
    if _sync_client is None or _sync_client_pid != os.getpid():
        _sync_client = Redis.from_url(settings.REDIS_URL, socket_connect_timeout=CONNECT_TIMEOUT_S,
                                      socket_timeout=COMMAND_TIMEOUT_S)
        _sync_client_pid = os.getpid()
    return _sync_client


def probe_redis(timeout_s: float = 1.0) -> None:
    """Ping Redis on a short-lived connection (health checks: never wait on a pool)."""
    client = Redis.from_url(settings.REDIS_URL, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
    try:
        client.ping()
    finally:
        client.close()
