"""The Redis channel layer, made to ride out a Redis outage and to let go quickly.

Stock channels-redis lets a connection error escape `receive()`, which kills
the consumer and drops every reader's socket the moment Redis blips. Here the
receive loop waits and retries instead: sockets stay open, runs that need
Redis report `unavailable`, and everything resumes when Redis is back.

It also keeps a closing socket from losing another socket's message. All the
consumers of one process share one Redis key and take turns popping it; the one
whose turn it is pops for everyone. Cancelling that pop (a socket closing)
could interrupt a reply Redis had already sent, and the message in it, meant
for some other reader, was gone: a worker run's batch missing from a stream.
And redis-py turned that cancellation into its own TimeoutError, which the
retry loop then swallowed, so the closed socket's consumer never ended until
Daphne killed it. See docs/adr/0019-channel-layer-pops-are-never-interrupted.md.
"""
import asyncio
import logging

from channels_redis.core import RedisChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger("coursesite.channel_layer")

RETRY_AFTER_S = 1.0


class ResilientRedisChannelLayer(RedisChannelLayer):
    # A pop that is under way is let finish rather than cancelled (below), so a closing
    # socket's consumer waits for it: keep that wait short.
    brpop_timeout = 1

    async def receive(self, channel):
        while True:
            try:
                return await super().receive(channel)
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                if _being_cancelled():
                    raise asyncio.CancelledError from error  # the consumer is ending: never retry past that
                logger.warning("channel layer receive failed (%s); retrying in %.0f s", error.__class__.__name__, RETRY_AFTER_S)
                await asyncio.sleep(RETRY_AFTER_S)

    async def _brpop_with_clean(self, index, channel, timeout):  # noqa: ASYNC109 (channels-redis's signature)
        """One pop, never interrupted half way (at most `brpop_timeout`): channels-redis files what
        it pops in a backup queue, put back for the next pop, but only once the pop's reply is read.
        A cancelled caller waits for the pop and its backup, then ends."""
        pop = asyncio.ensure_future(super()._brpop_with_clean(index, channel, timeout))
        try:
            return await asyncio.shield(pop)
        except asyncio.CancelledError:
            await asyncio.wait([pop])
            if not pop.cancelled():
                pop.exception()  # retrieved: the consumer is ending either way
            raise


def _being_cancelled() -> bool:
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0
