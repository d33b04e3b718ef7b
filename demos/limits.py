"""Limits: site-wide and per-address caps on runs, sockets and sessions; messages per socket.

Every cap is a sorted set in Redis whose members are scored by the time they
expire. Checking and adding happen in one Lua script (`ADMIT_SCRIPT`), so two
sockets racing for the last place cannot both win (the site practises its own
lesson), and the same script first drops members past their deadline, so a
process that dies holding places never pins them.

- A run holds a place in its placement's site-wide set and in its client
  address's set for that placement until its time limit plus a grace.
- A socket or a step session holds a *lease* in its address's set: a short
  deadline that this process's `LeaseKeeper` pushes forward while the socket
  lives. A socket that ends gives its lease back at once; one whose process was
  killed is forgotten within one lease period.
"""
from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from django.conf import settings
from redis.exceptions import RedisError

from coursesite import keys
from coursesite.redis_clients import async_redis

logger = logging.getLogger("demos.limits")

# KEYS: the sets to take a place in. ARGV: now, deadline, member, key ttl, then one cap per key.
# Returns '' once the member is in every set; else "<index of the full set>:<its earliest deadline>".
ADMIT_SCRIPT = """
local now = tonumber(ARGV[1])
for index, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  if redis.call('ZSCORE', key, ARGV[3]) == false
     and redis.call('ZCARD', key) >= tonumber(ARGV[4 + index]) then
    local first = redis.call('ZRANGE', key, 0, 0, 'WITHSCORES')
    return tostring(index - 1) .. ':' .. tostring(first[2])
  end
end
for _, key in ipairs(KEYS) do
  redis.call('ZADD', key, ARGV[2], ARGV[3])
  redis.call('EXPIRE', key, ARGV[4])
end
return ''
"""


@dataclass(frozen=True)
class Refusal:
    """Which cap was full, and how long until its earliest place expires."""

    full_key: str
    retry_after_s: float


async def _admit(set_keys: Sequence[str], caps: Sequence[int], *, member: str, deadline: float) -> Refusal | None:
    now = time.time()
    key_ttl = max(1, int(deadline - now) + 1)
    answer = await async_redis().eval(ADMIT_SCRIPT, len(set_keys), *set_keys, now, deadline, member, key_ttl, *caps)
    if not answer:
        return None
    index, earliest = (answer.decode() if isinstance(answer, bytes) else answer).split(":", 1)
    # Most places free up long before their deadline; suggest a short, honest wait.
    return Refusal(full_key=set_keys[int(index)], retry_after_s=round(max(1.0, min(10.0, float(earliest) - now)), 1))


# --- runs: site-wide and per address, per placement ------------------------------------------------

def cap_for(placement: str) -> int:
    """The site-wide number of runs one placement may have in flight."""
    return settings.DEMO_MAX_WORKER_RUNS if placement == "worker" else settings.DEMO_MAX_LOOP_RUNS


def address_cap_for(placement: str) -> int:
    """How many runs of one placement a single client address may have in flight."""
    return settings.DEMO_WORKER_RUNS_PER_ADDRESS if placement == "worker" else settings.DEMO_LOOP_RUNS_PER_ADDRESS


@dataclass(frozen=True)
class SlotRefused:
    """No slot: `mine` is True when the caller's own address is at its share, False when the site is full."""

    retry_after_s: float
    mine: bool


async def acquire_slot(*, placement: str, run_id: str, time_limit_s: float,
                       client_address: str | None = None) -> SlotRefused | None:
    """Take a site-wide slot (and one of the address's share); None on success.

    Both places are taken in one script, so an address at its share never
    holds a site-wide slot it cannot use.
    """
    deadline = time.time() + time_limit_s + settings.DEMO_SLOT_GRACE_S
    site_key = keys.runs_in_flight(placement)
    set_keys, caps = [site_key], [cap_for(placement)]
    if client_address is not None:
        set_keys.append(keys.runs_of_address(placement, client_address))
        caps.append(address_cap_for(placement))
    refusal = await _admit(set_keys, caps, member=run_id, deadline=deadline)
    if refusal is None:
        if client_address is not None:
            await async_redis().set(keys.run_address(run_id), client_address, exat=int(deadline) + 1)
        return None
    return SlotRefused(retry_after_s=refusal.retry_after_s, mine=refusal.full_key != site_key)


async def release_slot(*, placement: str, run_id: str) -> None:
    """Give a run's slot back, site-wide and in its address's share."""
    client = async_redis()
    address = await client.getdel(keys.run_address(run_id))
    async with client.pipeline(transaction=False) as pipe:
        pipe.zrem(keys.runs_in_flight(placement), run_id)
        if address is not None:
            pipe.zrem(keys.runs_of_address(placement, address.decode() if isinstance(address, bytes) else address), run_id)
        await pipe.execute()


# --- leases: sockets and sessions per address, kept alive while they last ----------------------------

class LeaseKeeper:
    """Pushes the deadline of every lease this process holds forward, every third of a lease.

    One task per event loop; it starts with the first lease and sleeps when
    there is none. If this process dies, nothing pushes its leases forward
    and the admission script drops them once their deadline passes.
    """

    def __init__(self) -> None:
        self.held: dict[str, set[str]] = {}
        self._task: asyncio.Task | None = None

    def hold(self, key: str, member: str) -> None:
        self.held.setdefault(key, set()).add(member)
        loop = asyncio.get_running_loop()
        if self._task is None or self._task.done() or self._task.get_loop() is not loop:
            self._task = loop.create_task(self._refresh_forever(), name="lease-keeper")

    def drop(self, key: str, member: str) -> None:
        members = self.held.get(key)
        if members is not None:
            members.discard(member)
            if not members:
                del self.held[key]

    async def refresh(self) -> None:
        """Push every held lease's deadline forward (only leases still present: XX)."""
        if not self.held:
            return
        deadline = time.time() + settings.DEMO_ADDRESS_LEASE_S
        async with async_redis().pipeline(transaction=False) as pipe:
            for key, members in list(self.held.items()):
                pipe.zadd(key, dict.fromkeys(members, deadline), xx=True)
                pipe.expire(key, int(settings.DEMO_ADDRESS_LEASE_S) + 1)
            await pipe.execute()

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(settings.DEMO_ADDRESS_LEASE_S / 3)
            try:
                await self.refresh()
            except (RedisError, OSError):
                logger.warning("could not refresh this process's address leases; retrying")


lease_keeper = LeaseKeeper()


class AddressLease:
    """One place in a per-address cap (a socket, a step session), held while it lives.

    `acquire()` answers None when admitted, else the seconds after which a
    place may be free; `release()` is idempotent and safe on every exit path.
    If Redis is unreachable the lease is granted uncounted: an address cap is
    a courtesy to other readers, not a reason to lock a reader out.
    """

    def __init__(self, kind: str, address: str, cap: int) -> None:
        self.key = keys.address_leases(kind, address)
        self.cap = cap
        self.member = uuid.uuid4().hex
        self.held = False

    async def acquire(self) -> float | None:
        try:
            refusal = await _admit([self.key], [self.cap], member=self.member,
                                   deadline=time.time() + settings.DEMO_ADDRESS_LEASE_S)
        except (RedisError, OSError):
            logger.warning("address caps unavailable (Redis); admitting uncounted")
            return None
        if refusal is not None:
            return refusal.retry_after_s
        self.held = True
        lease_keeper.hold(self.key, self.member)
        return None

    async def release(self) -> None:
        if not self.held:
            return
        self.held = False
        lease_keeper.drop(self.key, self.member)
        try:
            await async_redis().zrem(self.key, self.member)
        except (RedisError, OSError):
            logger.warning("could not give back a lease of %s; it expires by itself", self.key)

    def release_soon(self) -> None:
        """Release from a place that cannot await (a crashed consumer's last step)."""
        if self.held:
            task = asyncio.get_running_loop().create_task(self.release())
            _background.add(task)
            task.add_done_callback(_background.discard)


_background: set[asyncio.Task] = set()

# Lease kinds of the step-mode routes, shared by every demo's step consumer.
STEP_SOCKETS = "step-sockets"
STEP_SESSIONS = "step-sessions"


def step_session_lease(address: str) -> AddressLease:
    """A place in the per-address cap on step sessions (each holds a sandbox and database connections)."""
    return AddressLease(STEP_SESSIONS, address, settings.DEMO_STEP_SESSIONS_PER_ADDRESS)


async def address_lease_count(kind: str, address: str) -> int:
    """How many live leases an address holds (expired ones not counted); for health checks and tests."""
    return await async_redis().zcount(keys.address_leases(kind, address), time.time(), "+inf")


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
