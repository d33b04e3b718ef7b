"""The counter race: read-modify-write loses updates in a real PostgreSQL row; the three fixes lose none.

Every claim is checked at the demo's default parameters, five runs per mode,
through the real websocket and a real Celery worker. The cleanup tests look
at pg_stat_activity and the counter table: a run leaves nothing behind.
"""
import asyncio
import time

import pytest
from channels.db import database_sync_to_async
from django.db import connection

from demos.library import counter_race
from demos.library.counter_race.models import RaceCounter
from tests.demos.helpers import demo_socket, receive_runs, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

RUNS_PER_CLAIM = 5
# A socket may have two runs in flight at once.
RUNS_AT_ONCE = 2


async def run_many(mode: str, count: int, params: dict | None = None) -> list[tuple[list[dict], dict]]:
    """`count` runs of one mode, two at a time on one socket (so pairs really race side by side)."""
    results = []
    async with demo_socket() as socket:
        while len(results) < count:
            batch = min(RUNS_AT_ONCE, count - len(results))
            accepted = [await start_run(socket, "counter-race", {"mode": mode, **(params or {})}, ref=f"r{i}")
                        for i in range(batch)]
            finished = await receive_runs(socket, [a["run"] for a in accepted], timeout=60)
            results += [finished[a["run"]] for a in accepted]
    return results


def events_of(batches: list[dict]) -> list[dict]:
    return [event for batch in batches for event in batch["events"]]


@database_sync_to_async
def demo_connections() -> tuple[int, int]:
    """(connections to the test database, of which the demo's own), excluding the one asking."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*), count(*) FILTER (WHERE application_name = %s) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()",
            [counter_race.APPLICATION_NAME],
        )
        return cursor.fetchone()


@database_sync_to_async
def counter_rows() -> int:
    return RaceCounter.objects.count()


SQL_FRAGMENTS = {
    "read-modify-write": ['SELECT "race_counter"."n"', 'UPDATE "race_counter" SET "n" = '],
    "atomic-update": ['UPDATE "race_counter" SET "n" = ("race_counter"."n" + 1)'],
    "select-for-update": ["BEGIN", "FOR UPDATE", 'UPDATE "race_counter" SET "n" = ', "COMMIT"],
    "optimistic": ['AND "race_counter"."version" = ', '"version" = ("race_counter"."version" + 1)'],
}


def assert_streamed(mode: str, batches: list[dict], summary: dict) -> None:
    """Lanes per client, the counter against the expected count, and the SQL the mode really sent."""
    events = events_of(batches)
    assert len(events) < 8_000
    assert events[0] == {**events[0], "kind": "lanes", "count": 8}
    states = [event for event in events if event["kind"] == "state"]
    assert {event["lane"] for event in states} == set(range(8))
    assert sum(1 for event in states if event["state"] == "done") == 8
    metrics = {}
    for event in events:
        if event["kind"] == "metric":
            metrics.setdefault(event["name"], []).append(event["value"])
    assert metrics["counter"][-1] == summary["final"] and metrics["expected"][-1] == summary["expected"]
    sql = "\n".join(event["text"] for event in events if event["kind"] == "log")
    for fragment in SQL_FRAGMENTS[mode]:
        assert fragment in sql, (mode, fragment, sql)
    if mode == "select-for-update":
        assert any(event["state"] == "blocked" for event in states)
        assert metrics["lock_wait_ms"][-1] == pytest.approx(summary["lock_wait_ms"], abs=1)
    if mode == "optimistic":
        assert metrics["retries"][-1] == summary["retries"]


async def test_read_modify_write_loses_updates_in_every_run(celery_worker_thread, reset_worker_cache):
    results = await run_many("read-modify-write", RUNS_PER_CLAIM)
    for batches, finished in results:
        assert finished["status"] == "succeeded", finished
        summary = finished["summary"]
        assert summary["expected"] == 800
        assert summary["lost"] == summary["expected"] - summary["final"]
        assert summary["lost"] > 0, summary
        assert f"{summary['lost']} of 800 increments were lost" in summary["text"]
        assert summary["connections"] == 8  # one connection per client
        assert summary["lock_wait_ms"] == 0 and summary["retries"] == 0
        assert_streamed("read-modify-write", batches, summary)
    assert await counter_rows() == 0


@pytest.mark.parametrize("mode", ["atomic-update", "select-for-update", "optimistic"])
async def test_the_fixes_lose_no_update_in_any_run(mode, celery_worker_thread, reset_worker_cache):
    # 8 clients x 40 increments: still eight-way contention on one row (the optimistic mode retries), at
    # a quarter of the default's round trips.
    results = await run_many(mode, RUNS_PER_CLAIM, {"workers": 8, "increments": 40})
    for batches, finished in results:
        assert finished["status"] == "succeeded", finished
        summary = finished["summary"]
        assert summary["expected"] == summary["final"] == 320, summary
        assert summary["lost"] == 0
        assert summary["increments_per_s"] > 0 and summary["elapsed_ms"] > 0
        if mode == "select-for-update":
            # Eight clients taking turns: someone is always waiting for the lock.
            assert summary["lock_wait_ms"] > 0 and len(summary["lock_wait_ms_by_client"]) == 8
        if mode == "optimistic":
            assert summary["retries"] > 0
        assert_streamed(mode, batches, summary)
    assert await counter_rows() == 0


async def test_no_connection_or_counter_row_outlives_a_run(celery_worker_thread, reset_worker_cache):
    async with demo_socket() as socket:
        # A first run lets the worker thread open the engine's own connection, which it keeps.
        warm_up = await start_run(socket, "counter-race", {"workers": 2, "increments": 5})
        await receive_until_finished(socket, warm_up["run"])
        before, before_tagged = await demo_connections()
        assert before_tagged == 0

        accepted = await start_run(socket, "counter-race", {"mode": "select-for-update", "workers": 16, "increments": 10, "window_ms": 5})
        most_tagged = 0
        finished_task = asyncio.ensure_future(receive_until_finished(socket, accepted["run"], timeout=60))
        while not finished_task.done():
            most_tagged = max(most_tagged, (await demo_connections())[1])
            await asyncio.sleep(0.05)
        _, finished = await finished_task
    assert finished["status"] == "succeeded"
    assert most_tagged >= 16  # the check sees the demo's connections while they are open
    assert await counter_rows() == 0
    # The demo tags each client connection as it opens it, so a leaked one shows
    # up tagged. The total may grow by the engine's own persistent connections
    # (one per thread of its database pool, which a run can add to), so it is
    # not compared.
    deadline = time.monotonic() + 5
    while (now := await demo_connections())[1] != 0 and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert now[1] == 0, f"{now[1]} of the demo's connections still open ({before} connections before the run, {now[0]} after)"


async def test_a_cancelled_run_closes_its_connections_and_deletes_its_row(celery_worker_thread, reset_worker_cache):
    async with demo_socket() as socket:
        accepted = await start_run(socket, "counter-race", {"mode": "select-for-update", "window_ms": 20})
        deadline = time.monotonic() + 10
        while (await demo_connections())[1] < 8 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)  # the clients are connected: cancel mid-run
        await socket.send_json_to({"type": "cancel", "run": accepted["run"]})
        _, finished = await receive_until_finished(socket, accepted["run"], timeout=10)
    assert finished["status"] == "cancelled"
    deadline = time.monotonic() + 5
    while ((await demo_connections())[1] or await counter_rows()) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert (await demo_connections())[1] == 0
    assert await counter_rows() == 0


async def test_trials_plot_how_the_final_count_is_spread(celery_worker_thread, reset_worker_cache):
    async with demo_socket() as socket:
        accepted = await start_run(socket, "counter-race", {"trials": 3, "increments": 30})
        batches, finished = await receive_until_finished(socket, accepted["run"], timeout=60)
    summary = finished["summary"]
    finals = [event["value"] for event in events_of(batches) if event["kind"] == "metric" and event["name"] == "final"]
    assert finished["status"] == "succeeded"
    assert finals == summary["finals"] and len(finals) == 3
    assert summary["final_min"] == min(finals) == summary["final"]
    assert summary["final_max"] == max(finals) and summary["final_mean"] == pytest.approx(sum(finals) / 3, abs=0.1)
    assert all(final < 240 for final in finals)  # every trial lost some of its 8 × 30 increments
    assert "Over 3 trials the final count ranged from" in summary["text"]
    assert await counter_rows() == 0


async def test_runs_that_would_outlast_the_time_limit_are_refused():
    async with demo_socket() as socket:
        await socket.send_json_to({"type": "run", "demo": "counter-race", "ref": "x",
                                   "params": {"mode": "select-for-update", "workers": 32, "increments": 1000, "window_ms": 50}})
        error = await socket.receive_json_from(timeout=5)
    assert error["type"] == "error" and error["code"] == "invalid_params"
    assert "clients take turns" in error["message"]
