"""The deadlock demo's step mode: the reader makes two real PostgreSQL transactions deadlock by hand.

Everything goes through the real Daphne and a real sandbox subprocess with its
own connections; PostgreSQL itself detects the cycle (after its
deadlock_timeout) and picks the victim, so the tests accept either transaction
as the victim and check only what the server guarantees.
"""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from demos.library.deadlock.models import DeadlockAccount
from demos.library.deadlock.steps import APPLICATION_NAME
from tests.demos.helpers import demo_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

STEP_PATH = "/ws/steps/deadlock/"
DEADLOCK_DETECTED = "40P01"


async def open_session(communicator, scenario: str) -> dict:
    """Open a step session of `scenario` and check what `opened` says."""
    await communicator.send_json_to({"type": "open", "scenario": scenario, "ref": "d1"})
    opened = await communicator.receive_json_from(timeout=20)
    assert opened["type"] == "opened", opened
    assert opened["scenario"] == scenario and opened["ref"] == "d1" and opened["counter"] == 0
    return opened


async def send_step(communicator, session: str, tx: str, action: str) -> None:
    await communicator.send_json_to({"type": "step", "session": session, "tx": tx, "action": action})


async def step(communicator, session: str, tx: str, action: str, expect: str = "done") -> dict:
    """Send a step and return its answer (which must have status `expect`)."""
    await send_step(communicator, session, tx, action)
    answer = await communicator.receive_json_from(timeout=10)
    assert answer["type"] == "step", answer
    assert (answer["tx"], answer["action"], answer["status"]) == (tx, action, expect), answer
    return answer


def _sandbox_pids(session: str) -> list[int]:
    """Processes whose command line names this session's sandbox script and id."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"/deadlock/step_sandbox.py") for part in cmdline) and session.encode() in cmdline:
            pids.append(int(proc.name))
    return pids


@database_sync_to_async
def _step_connections() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE application_name = %s AND datname = current_database()",
            [APPLICATION_NAME],
        )
        return cursor.fetchone()[0]


@database_sync_to_async
def _deadlock_timeout_s() -> float:
    with connection.cursor() as cursor:
        cursor.execute("SELECT setting::float / 1000 FROM pg_settings WHERE name = 'deadlock_timeout'")
        return cursor.fetchone()[0]


@database_sync_to_async
def _rows_left(session: str) -> int:
    return DeadlockAccount.objects.filter(run_id=session).count()


async def assert_session_gone(session: str, *, timeout: float = 10) -> None:
    """The sandbox process, every connection tagged for this step mode and the session's two rows are gone."""
    deadline = time.monotonic() + timeout
    while _sandbox_pids(session) or await _step_connections() or await _rows_left(session):
        assert time.monotonic() < deadline, (
            f"left behind: processes {_sandbox_pids(session)}, connections {await _step_connections()}, "
            f"rows {await _rows_left(session)}"
        )
        await asyncio.sleep(0.1)


async def hold_a_and_b(communicator, session: str) -> None:
    """Both transactions begin; T1 takes its first row, T2 its first row."""
    await step(communicator, session, "T1", "begin")
    await step(communicator, session, "T2", "begin")
    await step(communicator, session, "T1", "update-a")


async def test_opposite_orders_deadlock_and_postgresql_aborts_one():
    async with demo_socket(STEP_PATH) as communicator:
        opened = await open_session(communicator, "opposite-order")
        session = opened["session"]
        assert opened["actions"] == {"T1": ["begin", "update-a", "update-b", "commit"],
                                     "T2": ["begin", "update-b", "update-a", "commit"]}
        assert _sandbox_pids(session), "the session runs in its own subprocess"
        assert await _step_connections() == 3  # T1, T2 and the lock watcher
        await hold_a_and_b(communicator, session)
        second = await step(communicator, session, "T2", "update-b")
        assert second["sql"].startswith("UPDATE deadlock_account SET balance = balance + 1 WHERE id = ")
        assert second["result"] == {"balance": 1, "rows": 1}
        # T1 reaches for B, which T2 holds: it waits.
        await send_step(communicator, session, "T1", "update-b")
        blocked = await communicator.receive_json_from(timeout=10)
        assert (blocked["tx"], blocked["action"], blocked["status"]) == ("T1", "update-b", "blocked"), blocked
        assert blocked["result"] == {"waiting_for": ["T2"]}
        # T2 reaches for A, which T1 holds: the cycle is closed, and PostgreSQL breaks it.
        await send_step(communicator, session, "T2", "update-a")
        answers: dict[str, dict] = {}
        goals: list[dict] = []  # the level's goal, judged by the sandbox from the same error (test_step_levels.py)
        while len(answers) < 2 or not goals:
            answer = await communicator.receive_json_from(timeout=15)
            if answer["type"] == "goal":
                goals.append(answer)
                continue
            assert answer["type"] == "step", answer
            if answer["status"] != "blocked":
                assert answer["tx"] not in answers, answer
                answers[answer["tx"]] = answer
        errors = [answer for answer in answers.values() if answer["status"] == "error"]
        assert len(errors) == 1, answers
        victim = errors[0]
        assert victim["result"]["sqlstate"] == DEADLOCK_DETECTED
        assert victim["result"]["message"] == "deadlock detected"
        assert "waits for ShareLock on transaction" in victim["result"]["detail"]
        survivor_name = "T2" if victim["tx"] == "T1" else "T1"
        survivor = answers[survivor_name]
        assert survivor["status"] == "done" and survivor["result"]["balance"] == 1, survivor
        # The victim is over; the survivor commits, and its +1 is what the rows keep.
        await send_step(communicator, session, victim["tx"], "commit")
        refused = await communicator.receive_json_from(timeout=10)
        assert (refused["type"], refused["code"]) == ("error", "invalid_step") and "rolled back" in refused["message"]
        commit = await step(communicator, session, survivor_name, "commit")
        assert commit["counter_committed"] == 1
    # The reader closed the socket without closing the session.
    await assert_session_gone(session)


async def test_one_order_turns_the_same_schedule_into_a_wait_and_both_commit():
    async with demo_socket(STEP_PATH) as communicator:
        opened = await open_session(communicator, "same-order")
        session = opened["session"]
        assert opened["actions"]["T1"] == opened["actions"]["T2"] == ["begin", "update-a", "update-b", "commit"]
        await hold_a_and_b(communicator, session)
        # The same presses as in the deadlock: T2's first row is now A, and T1 holds it.
        await send_step(communicator, session, "T2", "update-a")
        blocked = await communicator.receive_json_from(timeout=10)
        assert (blocked["tx"], blocked["action"], blocked["status"]) == ("T2", "update-a", "blocked"), blocked
        assert blocked["result"] == {"waiting_for": ["T1"]}
        await step(communicator, session, "T1", "update-b")  # B is free: T1 never waits
        # T2 can press nothing while it waits, and past deadlock_timeout nobody is aborted.
        await send_step(communicator, session, "T2", "update-b")
        refused = await communicator.receive_json_from(timeout=10)
        assert (refused["type"], refused["code"]) == ("error", "busy"), refused
        assert await communicator.receive_nothing(timeout=await _deadlock_timeout_s() + 0.5)
        commit1 = await step(communicator, session, "T1", "commit")
        assert commit1["counter_committed"] == 1
        released = await communicator.receive_json_from(timeout=10)
        assert (released["tx"], released["action"], released["status"]) == ("T2", "update-a", "done"), released
        assert released["result"]["balance"] == 2, "T2 waited, then saw T1's committed +1"
        await step(communicator, session, "T2", "update-b")
        commit2 = await step(communicator, session, "T2", "commit")
        assert commit2["counter_committed"] == 2
        goal = await communicator.receive_json_from(timeout=10)
        assert (goal["type"], goal["status"]) == ("goal", "missed"), goal
        await communicator.send_json_to({"type": "close", "session": session})
        assert await communicator.receive_json_from(timeout=10) == {"type": "closed", "session": session, "reason": "closed"}
        await assert_session_gone(session)


async def test_closing_the_socket_mid_wait_ends_the_sandbox_and_every_connection():
    async with demo_socket(STEP_PATH) as communicator:
        session = (await open_session(communicator, "same-order"))["session"]
        await hold_a_and_b(communicator, session)
        await send_step(communicator, session, "T2", "update-a")
        assert (await communicator.receive_json_from(timeout=10))["status"] == "blocked"
        assert _sandbox_pids(session) and await _step_connections() == 3
    # The reader left with T1 holding row A and T2 waiting for it.
    await assert_session_gone(session)


def test_the_lesson_block_renders_the_deadlock_step_widget():
    from lessons.rendering import render_lesson_markdown

    rendered = render_lesson_markdown("```demo-steps deadlock\nlevel: opposite-order\n```\n").html
    assert 'data-demo="deadlock"' in rendered and 'data-scenario="opposite-order"' in rendered
    assert "make them deadlock" in rendered

