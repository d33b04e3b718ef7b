"""Every demo draws its lanes in the shared vocabulary, truthfully, and names its summary for a reader.

A thread asleep in `time.sleep` is blocked in a system call, not on the CPU;
a task queued for an `asyncio.Lock` is waiting for a lock, not for I/O. The
declarations checked here are what GET /api/demos/ sends the widget.
"""
import pytest

from demos.base import LANE_STATES
from demos.registry import MAX_HEADLINE, describe, library_demos
from tests.demos.helpers import demo_socket, receive_runs, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

LIBRARY = {demo.slug: demo for demo in library_demos()}


def states_by_lane(batches: list[dict]) -> dict[int, list[dict]]:
    """Each lane's state events, in the order they were emitted."""
    lanes: dict[int, list[dict]] = {}
    for batch in batches:
        for event in batch["events"]:
            if event["kind"] == "state":
                lanes.setdefault(event["lane"], []).append(event)
    return lanes


@pytest.mark.parametrize("slug", sorted(LIBRARY))
def test_each_demo_declares_its_lane_states_from_the_shared_vocabulary(slug):
    declared = getattr(LIBRARY[slug], "lane_states", None)
    assert declared, f"{slug} does not say which lane states it draws"
    assert set(declared) <= LANE_STATES, set(declared) - LANE_STATES


@pytest.mark.parametrize("slug", sorted(LIBRARY))
def test_each_demo_names_its_headline_numbers_for_a_reader(slug):
    description = describe(LIBRARY[slug])
    headline, fields = description["headline"], description["summary_fields"]
    assert 1 <= len(headline) <= MAX_HEADLINE
    for key in headline:
        assert fields[key]["label"] and fields[key]["label"] != key, key
    for key, field in fields.items():
        assert field["label"] and field["label"] != key, (key, field)


async def test_thread_pool_threads_are_blocked_while_they_sleep(celery_worker_thread, reset_worker_cache):
    async with demo_socket() as socket:
        accepted = await start_run(socket, "thread-pool", {"requests": 4, "threads": 2, "wait_ms": 200})
        results = await receive_runs(socket, [accepted["run"]], timeout=30)
    batches, finished = results[accepted["run"]]
    assert finished["status"] == "succeeded", finished
    lanes = states_by_lane(batches)
    assert sorted(lanes) == [0, 1]
    for events in lanes.values():
        # Each thread sleeps through two requests, one after the other, then is done.
        assert [event["state"] for event in events] == ["blocked", "blocked", "done"], events
        assert all(event["label"].startswith("request ") for event in events[:2])
        sleeps_ms = [later["t"] - earlier["t"] for earlier, later in zip(events, events[1:], strict=False)]
        assert all(sleep >= 190 for sleep in sleeps_ms), sleeps_ms


async def test_await_race_shows_a_task_queued_for_the_lock_as_lock_wait():
    async with demo_socket() as socket:
        locked = await start_run(socket, "await-race", {"mode": "locked", "tasks": 4, "increments": 3}, ref="locked")
        unsafe = await start_run(socket, "await-race", {"mode": "unsafe", "tasks": 4, "increments": 3}, ref="unsafe")
        results = await receive_runs(socket, [locked["run"], unsafe["run"]])
    locked_states = {event["state"] for events in states_by_lane(results[locked["run"]][0]).values() for event in events}
    unsafe_states = {event["state"] for events in states_by_lane(results[unsafe["run"]][0]).values() for event in events}
    assert locked_states == {"running", "waiting", "lock-wait", "done"}
    assert unsafe_states == {"running", "waiting", "done"}  # no lock, so nobody waits for one
    assert "queued" not in locked_states
