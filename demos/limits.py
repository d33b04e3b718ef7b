"""Limits: site-wide caps on runs in flight, sockets per address, messages per socket.

A sorted set per placement holds the runs in flight, scored by the time each
must have ended. Checking and adding happen in one Lua script, so two sockets
racing for the last slot cannot both win (the site practises its own lesson).
Entries past their deadline are dropped, so a crashed process cannot leak slots.
"""
from __future__ import annotations

import time

from django.conf import settings

from coursesite import keys
from coursesite.redis_clients import async_redis

ACQUIRE_SCRIPT = """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', ARGV[1])
if redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[2]) then
  local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(first[2])
end
redis.call('ZADD', KEYS[1], ARGV[3], ARGV[4])
return ''
"""


def cap_for(placement: str) -> int:
    """The site-wide number of runs one placement may have in flight."""
    return settings.DEMO_MAX_WORKER_RUNS if placement == "worker" else settings.DEMO_MAX_LOOP_RUNS


async def acquire_slot(*, placement: str, run_id: str, time_limit_s: float) -> float | None:
    """Take a slot; None on success, else seconds after which one should free up."""
    now = time.time()
    deadline = now + time_limit_s + settings.DEMO_SLOT_GRACE_S
    earliest = await async_redis().eval(
        ACQUIRE_SCRIPT, 1, keys.runs_in_flight(placement), now, cap_for(placement), deadline, run_id)
    if not earliest:
        return None
    # Most runs end long before their deadline; suggest a short, honest wait.
    return max(1.0, min(10.0, float(earliest) - now))


async def release_slot(*, placement: str, run_id: str) -> None:
    await async_redis().zrem(keys.runs_in_flight(placement), run_id)


async def socket_admit(*, ip: str) -> bool:
    """Count a new socket from `ip`; False (and not counted) when it is over the cap."""
    client = async_redis()
    key = keys.sockets_of_address(ip)
    # One round trip for both; the expiry means a crashed process cannot pin an address for ever.
    async with client.pipeline(transaction=True) as pipe:
        pipe.incr(key)
        pipe.expire(key, settings.DEMO_SOCKET_COUNT_TTL_S)
        count, _ = await pipe.execute()
    if count > settings.DEMO_SOCKETS_PER_IP:
        await client.decr(key)
        return False
    return True


async def socket_release(*, ip: str) -> None:
    await async_redis().decr(keys.sockets_of_address(ip))


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
