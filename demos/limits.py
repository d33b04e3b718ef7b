"""Limits: site-wide caps on runs in flight, sockets per address, messages per socket.

A sorted set per placement holds the runs in flight, scored by the time each
must have ended. Checking and adding happen in one Lua script, so two sockets
racing for the last slot cannot both win (the site practises its own lesson).
Entries past their deadline are dropped, so a crashed process cannot leak slots.
"""
from __future__ import annotations

import asyncio
import time
import weakref

from django.conf import settings
from redis.asyncio import BlockingConnectionPool, Redis

ACQUIRE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(first[2])
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
return ''
"""

_clients: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Redis]" = weakref.WeakKeyDictionary()


def redis_client() -> Redis:
    """One client per event loop (tests run several loops; Daphne runs one)."""
    loop = asyncio.get_running_loop()
    client = _clients.get(loop)
    if client is None:
        # A bounded, blocking pool: a burst of a thousand readers queues for
        # 64 connections instead of opening a thousand at once.
        pool = BlockingConnectionPool.from_url(
            settings.REDIS_URL, max_connections=64, timeout=5, socket_connect_timeout=2, socket_timeout=5
        )
        client = Redis(connection_pool=pool)
        _clients[loop] = client
    return client


def _key(placement: str) -> str:
    return f"coursesite:demo-inflight:{placement}"


def cap_for(placement: str) -> int:
    return settings.DEMO_MAX_WORKER_RUNS if placement == "worker" else settings.DEMO_MAX_LOOP_RUNS


async def acquire_slot(*, placement: str, run_id: str, time_limit_s: float) -> float | None:
    """Take a slot; None on success, else seconds after which one should free up."""
    now = time.time()
    deadline = now + time_limit_s + 15
    earliest = await redis_client().eval(ACQUIRE_SCRIPT, 1, _key(placement), now, cap_for(placement), deadline, run_id)
    if not earliest:
        return None
    # Most runs end long before their deadline; suggest a short, honest wait.
    return max(1.0, min(10.0, float(earliest) - now))


async def release_slot(*, placement: str, run_id: str) -> None:
    await redis_client().zrem(_key(placement), run_id)


def _ip_key(ip: str) -> str:
    return f"coursesite:demo-sockets:{ip}"


async def socket_admit(*, ip: str) -> bool:
    """Count a new socket from `ip`; False (and not counted) when it is over the cap."""
    client = redis_client()
    key = _ip_key(ip)
    # One round trip for both; the expiry means a crashed process cannot pin an address for ever.
    async with client.pipeline(transaction=True) as pipe:
        count, _ = await pipe.incr(key).expire(key, 3600).execute()
    if count > settings.DEMO_SOCKETS_PER_IP:
        await client.decr(key)
        return False
    return True


async def socket_release(*, ip: str) -> None:
    await redis_client().decr(_ip_key(ip))


class MessageBudget:
    """A token bucket per socket: bursts are fine, floods are refused, then closed.

    `spend()` says "ok", "refuse" (answer `rate_limited`) or "close" (the client
    kept going after being refused many times).
    """

    def __init__(self, burst: int = 20, per_second: float = 5.0, refusals_before_close: int = 20) -> None:
        self.capacity = burst
        self.tokens = float(burst)
        self.per_second = per_second
        self.refusals_left = refusals_before_close
        self.updated = time.monotonic()

    def spend(self) -> str:
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * self.per_second)
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return "ok"
        self.refusals_left -= 1
        return "close" if self.refusals_left <= 0 else "refuse"
