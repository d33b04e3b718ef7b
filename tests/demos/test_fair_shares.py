"""One address cannot take every worker slot, step socket or step session; a second still gets in.

Against real Daphnes and a real prefork Celery worker: the per-address share
of worker runs is taken in the same Redis script as the site-wide cap, so a
reader opening socket after socket stops at its share with `busy` (and a
`retry_after_s`), while a reader from another address is accepted at once.
"""
from __future__ import annotations

from contextlib import AsyncExitStack

import pytest

from tests.demos.helpers import STEP_PATH, demo_socket, handshake_status

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server", "reset_worker_cache")]

# A worker run that stays in flight for the test's length (it is cancelled when its socket closes).
SLOW_WORKER_RUN = {"requests": 2, "threads": 1, "wait_ms": 3000}


async def ask_for_run(socket, ref: str) -> dict:
    await socket.send_json_to({"type": "run", "demo": "thread-pool", "params": SLOW_WORKER_RUN, "ref": ref})
    while True:
        message = await socket.receive_json_from(timeout=15)
        if message["type"] in {"accepted", "error"}:
            return message


async def test_one_address_stops_at_its_share_of_worker_slots_while_another_gets_a_run(daphne_factory,
                                                                                        celery_worker_process):
    server = daphne_factory(DEMO_MAX_WORKER_RUNS="8", DEMO_WORKER_RUNS_PER_ADDRESS="2")
    greedy = "127.0.2.1"
    answers = []
    async with AsyncExitStack() as sockets:
        for index in range(4):  # up to 8 runs (2 per socket) if nothing stopped it
            socket = await sockets.enter_async_context(demo_socket(server=server, from_address=greedy))
            for slot in range(2):
                answers.append(await ask_for_run(socket, f"g{index}-{slot}"))
        accepted = [answer for answer in answers if answer["type"] == "accepted"]
        refused = [answer for answer in answers if answer["type"] == "error"]
        assert len(accepted) == 2, answers
        assert {answer["code"] for answer in refused} == {"busy"}
        assert all(answer["retry_after_s"] > 0 for answer in refused), refused
        async with demo_socket(server=server, from_address="127.0.2.2") as other_reader:
            assert (await ask_for_run(other_reader, "other"))["type"] == "accepted"


async def test_step_sockets_per_address_are_capped(daphne_factory):
    server = daphne_factory(DEMO_STEP_SOCKETS_PER_ADDRESS="3")
    address = "127.0.2.10"
    async with AsyncExitStack() as sockets:
        for _ in range(3):
            await sockets.enter_async_context(demo_socket(STEP_PATH, server=server, from_address=address))
        assert await handshake_status(STEP_PATH, server=server, from_address=address) == 403
        assert await handshake_status(STEP_PATH, server=server, from_address="127.0.2.11") == 101


async def open_session(socket, ref: str) -> dict:
    await socket.send_json_to({"type": "open", "scenario": "atomic-update", "ref": ref})
    return await socket.receive_json_from(timeout=20)


async def test_step_sessions_per_address_are_capped_across_sockets(daphne_factory):
    server = daphne_factory(DEMO_STEP_SESSIONS_PER_ADDRESS="4")  # 2 sessions a socket, 4 an address
    address = "127.0.2.20"
    async with AsyncExitStack() as sockets:
        opened = []
        for index in range(2):
            socket = await sockets.enter_async_context(demo_socket(STEP_PATH, server=server, from_address=address))
            opened += [await open_session(socket, f"s{index}-{slot}") for slot in range(2)]
        assert [message["type"] for message in opened] == ["opened"] * 4, opened
        third = await sockets.enter_async_context(demo_socket(STEP_PATH, server=server, from_address=address))
        refused = await open_session(third, "one-too-many")
        assert (refused["type"], refused["code"]) == ("error", "busy") and refused["retry_after_s"] > 0, refused
        async with demo_socket(STEP_PATH, server=server, from_address="127.0.2.21") as other_reader:
            assert (await open_session(other_reader, "other"))["type"] == "opened"
