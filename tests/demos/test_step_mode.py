"""Step mode: the reader schedules two real transactions on real PostgreSQL, one statement at a time."""
from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from demos.library.counter_race import step_consumer
from demos.library.counter_race.models import RaceCounter
from demos.library.counter_race.steps import APPLICATION_NAME
from tests.demos.helpers import STEP_PATH, demo_socket, in_process_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]


def step_socket():
    """A step-mode socket to the real server; always closed."""
    return demo_socket(STEP_PATH)


async def open_session(communicator, scenario: str) -> dict:
    await communicator.send_json_to({"type": "open", "scenario": scenario, "ref": "s1"})
    opened = await communicator.receive_json_from(timeout=20)
    assert opened["type"] == "opened", opened
    assert opened["scenario"] == scenario and opened["ref"] == "s1" and opened["counter"] == 0
    return opened


async def step(communicator, session: str, tx: str, action: str, expect: str = "done") -> dict:
    """Send a step and return its answer (which must have status `expect`)."""
    await communicator.send_json_to({"type": "step", "session": session, "tx": tx, "action": action})
    answer = await communicator.receive_json_from(timeout=10)
    assert answer["type"] == "step", answer
    assert (answer["tx"], answer["action"], answer["status"]) == (tx, action, expect), answer
    return answer


def _sandbox_pids(session: str) -> list[int]:
    """Processes whose command line names this session (the sandbox takes --session ID)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if any(part.endswith(b"/stepper_sandbox.py") for part in cmdline) and session.encode() in cmdline:
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
def _row_exists(session: str) -> bool:
    return RaceCounter.objects.filter(run_id=session).exists()


async def assert_session_gone(session: str, *, other_sessions: int = 0, timeout: float = 10) -> None:
    """The sandbox process, its three connections and its counter row are all gone."""
    deadline = time.monotonic() + timeout
    while _sandbox_pids(session) or await _step_connections() > 3 * other_sessions or await _row_exists(session):
        assert time.monotonic() < deadline, (
            f"left behind: processes {_sandbox_pids(session)}, connections {await _step_connections()}, "
            f"row {await _row_exists(session)}"
        )
        await asyncio.sleep(0.1)


async def test_read_read_write_write_loses_one_update():
    async with step_socket() as communicator:
        opened = await open_session(communicator, "read-modify-write")
        session = opened["session"]
        assert opened["actions"] == {"T1": ["begin", "read", "write", "commit"], "T2": ["begin", "read", "write", "commit"]}
        assert _sandbox_pids(session), "the session runs in its own subprocess"
        assert await _step_connections() == 3  # T1, T2 and the lock watcher
        await step(communicator, session, "T1", "begin")
        await step(communicator, session, "T2", "begin")
        read1 = await step(communicator, session, "T1", "read")
        read2 = await step(communicator, session, "T2", "read")
        assert read1["result"]["n"] == read2["result"]["n"] == 0
        assert read1["sql"].startswith("SELECT n FROM race_counter WHERE id = ")
        write1 = await step(communicator, session, "T1", "write")
        assert write1["result"] == {"n": 1, "rows": 1}
        assert write1["sql"].startswith("UPDATE race_counter SET n = 1 WHERE id = ")
        assert write1["counter_committed"] == 0  # T1 has not committed yet
        # T2's write waits for T1's row lock and goes through after T1 commits, writing the stale 0 + 1.
        await communicator.send_json_to({"type": "step", "session": session, "tx": "T2", "action": "write"})
        blocked = await communicator.receive_json_from(timeout=10)
        assert (blocked["tx"], blocked["status"], blocked["result"]) == ("T2", "blocked", {"waiting_for": ["T1"]})
        commit1 = await step(communicator, session, "T1", "commit")
        assert commit1["counter_committed"] == 1
        write2 = await communicator.receive_json_from(timeout=10)
        assert (write2["tx"], write2["action"], write2["status"], write2["result"]["n"]) == ("T2", "write", "done", 1)
        commit2 = await step(communicator, session, "T2", "commit")
        assert commit2["counter_committed"] == 1, "two commits, each adding one, yet the counter says 1"
        goal = await communicator.receive_json_from(timeout=10)  # the level's goal, judged from the row
        assert (goal["type"], goal["status"]) == ("goal", "reached"), goal
        await communicator.send_json_to({"type": "close", "session": session})
        assert await communicator.receive_json_from(timeout=10) == {"type": "closed", "session": session, "reason": "closed"}
        await assert_session_gone(session)


async def test_select_for_update_blocks_the_second_read_until_the_first_commits():
    async with step_socket() as communicator:
        session = (await open_session(communicator, "select-for-update"))["session"]
        await step(communicator, session, "T1", "begin")
        await step(communicator, session, "T2", "begin")
        read1 = await step(communicator, session, "T1", "read")
        assert read1["sql"].endswith("FOR UPDATE") and read1["result"]["n"] == 0
        await communicator.send_json_to({"type": "step", "session": session, "tx": "T2", "action": "read"})
        blocked = await communicator.receive_json_from(timeout=10)
        assert (blocked["tx"], blocked["action"], blocked["status"]) == ("T2", "read", "blocked")
        assert blocked["result"]["waiting_for"] == ["T1"]
        # Still waiting while T1 works: nothing arrives for T2 until T1 commits.
        assert await communicator.receive_nothing(timeout=0.5)
        await step(communicator, session, "T1", "write")
        assert await communicator.receive_nothing(timeout=0.3)
        commit1 = await step(communicator, session, "T1", "commit")
        assert commit1["counter_committed"] == 1
        read2 = await communicator.receive_json_from(timeout=10)
        assert (read2["tx"], read2["action"], read2["status"], read2["result"]["n"]) == ("T2", "read", "done", 1)
        write2 = await step(communicator, session, "T2", "write")
        assert write2["result"]["n"] == 2
        commit2 = await step(communicator, session, "T2", "commit")
        assert commit2["counter_committed"] == 2


async def test_atomic_update_counts_both_increments():
    async with step_socket() as communicator:
        opened = await open_session(communicator, "atomic-update")
        session = opened["session"]
        assert opened["actions"]["T1"] == ["begin", "update", "commit"]
        await step(communicator, session, "T1", "begin")
        await step(communicator, session, "T2", "begin")
        update1 = await step(communicator, session, "T1", "update")
        assert update1["sql"].startswith("UPDATE race_counter SET n = n + 1") and update1["result"]["n"] == 1
        await communicator.send_json_to({"type": "step", "session": session, "tx": "T2", "action": "update"})
        assert (await communicator.receive_json_from(timeout=10))["status"] == "blocked"
        await step(communicator, session, "T1", "commit")
        update2 = await communicator.receive_json_from(timeout=10)
        assert (update2["tx"], update2["status"], update2["result"]["n"]) == ("T2", "done", 2)
        commit2 = await step(communicator, session, "T2", "commit")
        assert commit2["counter_committed"] == 2


async def test_invalid_steps_are_errors_and_the_socket_keeps_working():
    async with step_socket() as communicator:
        session = (await open_session(communicator, "select-for-update"))["session"]

        async def expect_error(message: dict, code: str) -> dict:
            await communicator.send_json_to(message)
            error = await communicator.receive_json_from(timeout=10)
            assert error["type"] == "error" and error["code"] == code, error
            return error

        await expect_error({"type": "dance"}, "bad_message")
        await expect_error({"type": "open", "scenario": "no-such-thing"}, "bad_message")
        await expect_error({"type": "step", "session": "nope", "tx": "T1", "action": "begin"}, "unknown_session")
        await expect_error({"type": "step", "session": session, "tx": "T3", "action": "begin"}, "bad_message")
        error = await expect_error({"type": "step", "session": session, "tx": "T1", "action": "write"}, "invalid_step")
        assert error["session"] == session and "next step is begin" in error["message"]
        await step(communicator, session, "T1", "begin")
        error = await expect_error({"type": "step", "session": session, "tx": "T1", "action": "write"}, "invalid_step")
        assert "read the counter before it can write" in error["message"]
        await expect_error({"type": "step", "session": session, "tx": "T1", "action": "update"}, "invalid_step")
        # While T2 waits for T1's lock, another T2 step is refused as busy.
        await step(communicator, session, "T1", "read")
        await step(communicator, session, "T2", "begin")
        await communicator.send_json_to({"type": "step", "session": session, "tx": "T2", "action": "read"})
        assert (await communicator.receive_json_from(timeout=10))["status"] == "blocked"
        await expect_error({"type": "step", "session": session, "tx": "T2", "action": "write"}, "busy")
        # A third session on one socket is refused; the socket and the first session keep working.
        second = (await open_session(communicator, "atomic-update"))["session"]
        await expect_error({"type": "open", "scenario": "atomic-update"}, "busy")
        await communicator.send_json_to({"type": "close", "session": second})
        assert (await communicator.receive_json_from(timeout=10))["type"] == "closed"
        await step(communicator, session, "T1", "write")
        await step(communicator, session, "T1", "commit")
        assert (await communicator.receive_json_from(timeout=10))["status"] == "done"  # T2's read got the row
        await expect_error({"type": "step", "session": session, "tx": "T1", "action": "commit"}, "invalid_step")
    await assert_session_gone(session)


async def test_closing_the_socket_ends_the_subprocess_and_its_connections():
    async with step_socket() as communicator:
        session = (await open_session(communicator, "select-for-update"))["session"]
        await step(communicator, session, "T1", "begin")
        await step(communicator, session, "T2", "begin")
        await step(communicator, session, "T1", "read")
        await communicator.send_json_to({"type": "step", "session": session, "tx": "T2", "action": "read"})
        assert (await communicator.receive_json_from(timeout=10))["status"] == "blocked"
        assert _sandbox_pids(session) and await _step_connections() == 3
    # The reader left with T1 holding the row lock and T2 waiting for it.
    await assert_session_gone(session)


async def test_an_idle_session_ends_by_itself(monkeypatch):
    monkeypatch.setattr(step_consumer.StepConsumer, "idle_limit_s", 1.0)
    # In process on purpose: the shortened idle limit is patched into this process's consumer.
    async with in_process_socket(STEP_PATH) as communicator:
        session = (await open_session(communicator, "read-modify-write"))["session"]
        await step(communicator, session, "T1", "begin")
        await step(communicator, session, "T1", "read")
        started = time.monotonic()
        closed = await communicator.receive_json_from(timeout=10)
        assert closed == {"type": "closed", "session": session, "reason": "idle"}
        assert 0.8 <= time.monotonic() - started < 8
        await assert_session_gone(session)
        await communicator.send_json_to({"type": "step", "session": session, "tx": "T1", "action": "write"})
        assert (await communicator.receive_json_from(timeout=10))["code"] == "unknown_session"


def test_a_demo_steps_block_renders_the_widget_place_and_rejects_bad_blocks():
    from lessons.rendering import LessonRenderError, render_lesson_markdown

    rendered = render_lesson_markdown("```demo-steps counter-race\nlevel: select-for-update\n```\n")
    assert 'class="demo-steps"' in rendered.html and 'data-scenario="select-for-update"' in rendered.html
    # `scenario:` is the older name of `level:`, still read; both at once is an error.
    older = render_lesson_markdown("```demo-steps counter-race\nscenario: atomic-update\n```\n").html
    assert 'data-scenario="atomic-update"' in older
    with pytest.raises(LessonRenderError, match="not both"):
        render_lesson_markdown("```demo-steps counter-race\nlevel: atomic-update\nscenario: atomic-update\n```\n")
    with pytest.raises(LessonRenderError, match="level must be one of"):
        render_lesson_markdown("```demo-steps counter-race\nlevel: optimistic\n```\n")
    assert "needs JavaScript" in rendered.html
    assert 'data-scenario="read-modify-write"' in render_lesson_markdown("```demo-steps counter-race\n```\n").html
    with pytest.raises(LessonRenderError, match="scenario must be one of"):
        render_lesson_markdown("```demo-steps counter-race\nscenario: optimistic\n```\n")
    with pytest.raises(LessonRenderError, match="step mode"):
        render_lesson_markdown("```demo-steps one-cook\n```\n")
