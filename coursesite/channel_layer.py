"""The Redis channel layer, made to ride out a Redis outage and to let go quickly.

Stock channels-redis lets a connection error escape `receive()`, which kills
the consumer and drops every reader's socket the moment Redis blips. Here the
receive loop waits and retries instead: sockets stay open, runs that need
Redis report `unavailable`, and everything resumes when Redis is back.
"""
import asyncio
import logging

from channels_redis.core import RedisChannelLayer
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger("coursesite.channel_layer")

RETRY_AFTER_S = 1.0


class ResilientRedisChannelLayer(RedisChannelLayer):
    # redis-py shields a blocking pop from cancellation, so a closing socket's
    # consumer waits for the pop to time out: keep that wait short.
    brpop_timeout = 1

    async def receive(self, channel):
        while True:
            try:
                return await super().receive(channel)
            except (RedisConnectionError, RedisTimeoutError, OSError) as error:
                logger.warning("channel layer receive failed (%s); retrying in %.0f s", error.__class__.__name__, RETRY_AFTER_S)
                await asyncio.sleep(RETRY_AFTER_S)
