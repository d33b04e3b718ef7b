"""A socket closing never loses another socket's message, and its consumer ends when cancelled.

All the consumers of one web process take turns popping one Redis key; the
one whose turn it is pops for everyone. Stock channels-redis, on redis-py 8,
let a cancellation (a socket closing) interrupt a pop whose reply Redis had
already sent: the message, meant for some other reader, was gone. A clean-clone
suite run lost batch 5 of a worker run's stream that way; repeated by hand, the
stock layer lost 19 messages in 100 such cancellations. The closing consumer
also hung until redis-py's own read timeout, which the retrying layer used to
swallow, so Daphne had to kill it. This runs the site's layer on the real Redis.

The first test repeats the suite's case, a stream to one reader while other
sockets open and close (eight at a time, each cancelled once and, if it has not
ended soon after, again, as Daphne kills an instance that outlives its close):
on the old layer, 3 to 5 of its 300 messages went missing in every try. The
second pins the moment down. Each round: socket A's consumer is the one popping; socket B waits its turn; a
message for B is sent, and A is cancelled at once, before its loop has read the
reply Redis sent for B.
"""
from __future__ import annotations

import asyncio
import random

from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

ROUNDS = 5


async def _one_round(layer, sender, b_channel: str, n: int) -> tuple[bool, bool]:
    """(A ended within 3 s of its cancel, B got its message)."""
    a_channel = await layer.new_channel()
    a_receive = asyncio.ensure_future(layer.receive(a_channel))
    await asyncio.sleep(0.05)  # A has the turn and is blocked in Redis
    b_receive = asyncio.ensure_future(layer.receive(b_channel))
    await asyncio.sleep(0.05)
    await sender.send(b_channel, {"type": "for.b", "n": n})  # Redis has already answered A's pop
    a_receive.cancel()  # no await in between: A has not read that answer
    a_done, _ = await asyncio.wait([a_receive], timeout=3)
    b_done, _ = await asyncio.wait([b_receive], timeout=5)
    got = bool(b_done) and b_receive.result() == {"type": "for.b", "n": n}
    for leftover in (a_receive, b_receive):
        if not leftover.done():
            leftover.cancel()
            await asyncio.wait([leftover], timeout=5)
    return bool(a_done), got


async def test_cancelling_the_consumer_whose_turn_it_is_to_pop_loses_no_other_consumer_s_message():
    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    sender = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    b_channel = await layer.new_channel()
    try:
        outcomes = [await _one_round(layer, sender, b_channel, n) for n in range(ROUNDS)]
    finally:
        await layer.close_pools()
        await sender.close_pools()
    assert [got for _, got in outcomes] == [True] * ROUNDS, "a message for B was lost when A's socket closed"
    assert [ended for ended, _ in outcomes] == [True] * ROUNDS, "a cancelled consumer went on receiving"


STREAM = 300


async def test_a_stream_to_one_reader_arrives_whole_while_other_sockets_open_and_close():
    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    sender = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    reader = await layer.new_channel()
    received: list[int] = []
    rng = random.Random(7)

    async def read_stream():
        while True:
            received.append((await layer.receive(reader))["n"])

    async def sockets_coming_and_going():
        while True:
            receiving = asyncio.ensure_future(layer.receive(await layer.new_channel()))
            await asyncio.sleep(rng.uniform(0, 0.02))
            receiving.cancel()  # the socket closed
            done, _ = await asyncio.wait([receiving], timeout=rng.uniform(0.05, 0.3))
            if not done:
                receiving.cancel()  # Daphne kills an instance that outlives its close
                await asyncio.wait([receiving], timeout=5)

    tasks = [asyncio.ensure_future(read_stream())] + [asyncio.ensure_future(sockets_coming_and_going()) for _ in range(8)]
    try:
        for n in range(STREAM):
            await sender.send(reader, {"type": "batch", "n": n})
            await asyncio.sleep(0.01)
        for _ in range(50):  # the last messages, at most 5 s
            if len(received) >= STREAM:
                break
            await asyncio.sleep(0.1)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.wait(tasks, timeout=10)
        await layer.close_pools()
        await sender.close_pools()
    assert sorted(set(range(STREAM)) - set(received)) == [], "messages for the reader were lost"
    assert received == list(range(STREAM))
