"""A worker run's batch whose send to Redis fails is sent again, never skipped; a repeat reaches the reader once.

The pump takes a batch off the recorder before it publishes it. Under load a
publish can time out, either before Redis had the batch or after; both used to
lose it for good, and the reader saw a gap in `seq` (a clean-clone suite run on
a busy machine caught one in the offload demo's stream). These tests run the
real pump against the real Redis channel layer with a sender that fails once
each way, then feed what arrived to the socket side's relay.
"""
from __future__ import annotations

import asyncio
import collections
import threading
import uuid

from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

from coursesite import keys
from demos import supervisor
from demos.events import EventRecorder
from demos.registry import get_demo
from demos.sender import RunSender


async def _published_by_a_flaky_pump(monkeypatch, run_id: str) -> list[dict]:
    layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
    channel = await layer.new_channel()
    await layer.group_add(keys.run_group(run_id), channel)
    attempts: collections.Counter[int] = collections.Counter()

    class FlakySender(RunSender):
        async def send(self, message):
            if message["type"] == "events":
                attempts[message["seq"]] += 1
                if message["seq"] == 1 and attempts[1] == 1:
                    raise TimeoutError  # lost before Redis had it
                if message["seq"] == 2 and attempts[2] == 1:
                    await super().send(message)
                    raise TimeoutError  # Redis had it, but the answer came too late
            await super().send(message)

    monkeypatch.setattr(supervisor, "RunSender", FlakySender)
    recorder = EventRecorder()
    pump = supervisor.WorkerPump(run_id, recorder, threading.Event())
    pump.start()
    for tick in range(4):
        recorder("tick", n=tick)
        await asyncio.sleep(0.3)  # one batch per tick: the pump sends every 50 ms
    await asyncio.to_thread(pump.finish, {"type": "finished", "run": run_id, "status": "succeeded", "summary": {}})
    published = []
    while not published or published[-1]["type"] != "finished":
        message = await asyncio.wait_for(layer.receive(channel), 10)
        if message["type"] == "run.message":
            published.append(message["message"])
    await layer.close_pools()
    return published


async def test_a_batch_whose_publish_failed_is_sent_again_before_any_later_one(monkeypatch):
    published = await _published_by_a_flaky_pump(monkeypatch, str(uuid.uuid4()))
    assert [message["seq"] for message in published if message["type"] == "events"] == [0, 1, 2, 2, 3]
    assert [event["n"] for message in published if message["type"] == "events" for event in message["events"]] == [
        0, 1, 2, 2, 3]


async def test_the_socket_passes_each_batch_on_once_in_order(monkeypatch):
    run_id = str(uuid.uuid4())
    published = await _published_by_a_flaky_pump(monkeypatch, run_id)
    forwarded: list[dict] = []

    async def to_reader(message):
        forwarded.append(message)

    run = supervisor.WorkerRun(run_id=run_id, demo=get_demo("offload"), params={}, send=to_reader, on_end=lambda _: None)
    for message in published:
        if message["type"] == "events":
            await run.relay({"type": "run.message", "message": message})
    assert [message["seq"] for message in forwarded] == [0, 1, 2, 3]
