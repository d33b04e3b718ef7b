"""deadlock: opposite lock orders deadlock under load and cost time; one agreed order never deadlocks.

The claim is checked at the demo's defaults through the real websocket and a
real Celery worker, several runs per mode. The cleanup tests look at
pg_stat_activity (the demo tags its connections) and at the demo's table: a
run, a cancelled run and a run that gave up leave nothing behind.
"""
import asyncio
import re
import statistics
import time

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from demos.library import deadlock
from demos.library.deadlock.models import DeadlockAccount
from lessons.rendering import render_lesson_markdown
from lessons.services import shipped_courses
from tests.demos.helpers import demo_socket, receive_runs, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

LESSON = "06-race-conditions.md"
RUNS_PER_MODE = 3
# What PostgreSQL's DETAIL line says of each process in the cycle.
REPORT_LINE = re.compile(r"Process \d+ waits for \w+ on .+; blocked by process \d+\.")


def events_of(batches: list[dict]) -> list[dict]:
    return [event for batch in batches for event in batch["events"]]


@database_sync_to_async
def tagged_connections() -> int:
    """The demo's connections to the test database that are open now."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND application_name = %s",
                       [deadlock.APPLICATION_NAME])
        return cursor.fetchone()[0]


@database_sync_to_async
def account_rows() -> int:
    return DeadlockAccount.objects.count()


async def wait_until_clean(within_s: float = 5) -> tuple[int, int]:
    """(tagged connections, account rows) once both are zero, or whatever is left at the deadline.

    Polled: they live in PostgreSQL, another process, which has no event to await.
    """
    deadline = time.monotonic() + within_s
    while True:
        left = (await tagged_connections(), await account_rows())
        if left == (0, 0) or time.monotonic() > deadline:
            return left
        await asyncio.sleep(0.05)


async def wait_for_tagged_connections(count: int, within_s: float = 10) -> None:
    """Return once the demo has at least `count` connections open (or the deadline passed)."""
    deadline = time.monotonic() + within_s
    while True:
        if await tagged_connections() >= count or time.monotonic() > deadline:
            return
        await asyncio.sleep(0.02)


async def test_opposite_orders_deadlock_and_cost_time_one_order_never_deadlocks(celery_worker_thread, reset_worker_cache):
    results: dict[str, list[tuple[list[dict], dict]]] = {"unordered": [], "ordered": []}
    async with demo_socket() as socket:
        for number in range(RUNS_PER_MODE):
            # One run of each mode side by side, as the lesson's compare block starts them.
            accepted = {mode: await start_run(socket, "deadlock", {"mode": mode}, ref=f"{mode}-{number}") for mode in results}
            finished = await receive_runs(socket, [a["run"] for a in accepted.values()], timeout=60)
            for mode, a in accepted.items():
                results[mode].append(finished[a["run"]])

    for batches, finished in results["unordered"]:
        assert finished["status"] == "succeeded", finished
        summary = finished["summary"]
        assert summary["committed"] == 20  # 4 clients × 5 transfers, every one in the end
        assert summary["deadlocks"] > 0, summary
        assert summary["retries"] == summary["deadlocks"]  # every victim was retried, none given up
        assert summary["lock_wait_ms"] > 0
        report_lines = summary["deadlock_report"].splitlines()
        assert len(report_lines) >= 2 and all(REPORT_LINE.fullmatch(line) for line in report_lines), summary["deadlock_report"]
        # Each deadlock holds both rows still for deadlock_timeout before PostgreSQL breaks it.
        assert summary["elapsed_ms"] > summary["one_at_a_time_ms"] + summary["deadlock_timeout_ms"], summary
        assert f"PostgreSQL found {summary['deadlocks']} deadlock" in summary["text"]
        events = events_of(batches)
        states = [event for event in events if event["kind"] == "state"]
        assert {event["lane"] for event in states} == set(range(4))
        assert sum(event["state"] == "failed" for event in states) == summary["deadlocks"]
        assert sum(event["state"] == "done" for event in states) == 4
        logs = [event["text"] for event in events if event["kind"] == "log"]
        assert "DETAIL: " + report_lines[0] in logs

    for batches, finished in results["ordered"]:
        assert finished["status"] == "succeeded", finished
        summary = finished["summary"]
        assert summary["committed"] == 20
        assert summary["deadlocks"] == 0 and summary["retries"] == 0, summary
        assert summary["deadlock_report"] is None
        assert summary["lock_wait_ms"] > 0  # the clients still queue for the rows
        assert "0 deadlocks" in summary["text"]
        states = [event for event in events_of(batches) if event["kind"] == "state"]
        assert not any(event["state"] == "failed" for event in states)
        assert any(event["state"] == "blocked" for event in states)

    elapsed = {mode: statistics.median(finished["summary"]["elapsed_ms"] for _, finished in runs) for mode, runs in results.items()}
    assert elapsed["unordered"] > elapsed["ordered"], elapsed
    assert await wait_until_clean() == (0, 0)


async def test_every_tagged_connection_closes_after_a_run_and_after_a_cancel(celery_worker_thread, reset_worker_cache):
    async with demo_socket() as socket:
        accepted = await start_run(socket, "deadlock", {"workers": 6, "transfers": 3})
        finished_task = asyncio.ensure_future(receive_until_finished(socket, accepted["run"], timeout=60))
        most_open = 0
        while not finished_task.done():
            most_open = max(most_open, await tagged_connections())
            await asyncio.sleep(0.02)
        _, finished = await finished_task
        assert finished["status"] == "succeeded", finished
        assert most_open >= 6  # the check sees the clients' connections while they are open
        assert await wait_until_clean() == (0, 0)

        # Long enough to be cancelled mid-run: 40 transfers of 200 ms, taking turns.
        accepted = await start_run(socket, "deadlock", {"mode": "ordered", "transfers": 10, "hold_ms": 200})
        await wait_for_tagged_connections(4)  # the clients are connected: cancel mid-run
        await socket.send_json_to({"type": "cancel", "run": accepted["run"]})
        _, finished = await receive_until_finished(socket, accepted["run"], timeout=10)
    assert finished["status"] == "cancelled", finished
    assert await wait_until_clean() == (0, 0)


async def test_a_transfer_that_runs_out_of_retries_fails_the_run_with_a_clear_summary(celery_worker_thread, reset_worker_cache):
    # Two clients start in step and each holds its first row for 50 ms: the first transfers meet head on,
    # and with no retry allowed the first victim ends the run.
    async with demo_socket() as socket:
        accepted = await start_run(socket, "deadlock", {"workers": 2, "transfers": 3, "hold_ms": 50, "max_retries": 0})
        _, finished = await receive_until_finished(socket, accepted["run"], timeout=30)
    assert finished["status"] == "failed", finished
    summary = finished["summary"]
    assert summary["error"] == "DeadlockRetriesExhausted"
    assert re.search(r"client \d gave up on its transfer \d: PostgreSQL chose it as the deadlock victim 1 time, "
                     r"and max_retries is 0\. By then: \d+ deadlocks?, 0 retries", summary["text"]), summary["text"]
    assert "PostgreSQL's report: Process " in summary["text"]
    assert await wait_until_clean() == (0, 0)


async def test_bad_parameters_are_refused():
    async with demo_socket() as socket:
        await socket.send_json_to({"type": "run", "demo": "deadlock", "ref": "long", "params": {"workers": 8, "transfers": 10}})
        too_long = await socket.receive_json_from(timeout=5)
        await socket.send_json_to({"type": "run", "demo": "deadlock", "ref": "mode", "params": {"mode": "sometimes"}})
        bad_mode = await socket.receive_json_from(timeout=5)
        await socket.send_json_to({"type": "run", "demo": "deadlock", "ref": "one", "params": {"workers": 1}})
        one_client = await socket.receive_json_from(timeout=5)
    for error in (too_long, bad_mode, one_client):
        assert error["type"] == "error" and error["code"] == "invalid_params", error
    assert "deadlock_timeout" in too_long["message"]
    assert "mode" in bad_mode["message"] and "workers" in one_client["message"]


@database_sync_to_async
def open_connection_as_a_role_without_privileges() -> tuple[int, int, bool]:
    with connection.cursor() as cursor:
        cursor.execute("CREATE ROLE deadlock_demo_plain_user NOLOGIN")
        try:
            cursor.execute("SET ROLE deadlock_demo_plain_user")
            return deadlock._open_tagged_connection()
        finally:
            cursor.execute("RESET ROLE")
            cursor.execute("RESET ALL")
            cursor.execute("DROP ROLE deadlock_demo_plain_user")


async def test_a_role_that_may_not_lower_deadlock_timeout_keeps_the_servers_setting():
    _, timeout_ms, lowered = await open_connection_as_a_role_without_privileges()
    assert lowered is False
    assert timeout_ms == 1000  # PostgreSQL's default, which the suite's server keeps


def test_the_race_conditions_lesson_compares_the_two_orders():
    rendered = render_lesson_markdown((shipped_courses()[0] / LESSON).read_text())
    assert "deadlock" in rendered.demo_slugs
    section = re.search(r'<section class="demo"(?: id="[^"]+")? data-demo="deadlock" data-configs="([^"]+)"', rendered.html)
    assert section is not None
    configs = section.group(1).replace("&quot;", '"')
    assert '"mode": "unordered"' in configs and '"mode": "ordered"' in configs
