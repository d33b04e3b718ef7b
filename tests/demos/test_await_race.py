"""await-race: tasks on one thread lose updates across an await, unless a lock spans it."""
import pytest

from lessons.rendering import render_lesson_markdown
from lessons.services import shipped_courses
from tests.demos.helpers import demo_socket, receive_runs, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

LESSON = "06-race-conditions.md"


async def test_unsafe_loses_updates_on_one_thread_and_locked_loses_none():
    async with demo_socket() as socket:
        unsafe = await start_run(socket, "await-race", {}, ref="unsafe")
        locked = await start_run(socket, "await-race", {"mode": "locked"}, ref="locked")
        results = await receive_runs(socket, [unsafe["run"], locked["run"]])
    params = unsafe["params"]
    assert params["mode"] == "unsafe"
    expected = params["tasks"] * params["increments"]

    unsafe_batches, unsafe_finished = results[unsafe["run"]]
    assert unsafe_finished["status"] == "succeeded"
    lost = unsafe_finished["summary"]
    assert lost["expected"] == expected
    assert lost["lost"] > 0 and lost["final"] == lost["expected"] - lost["lost"]
    assert f"{lost['lost']} updates" in lost["text"]
    events = [event for batch in unsafe_batches for event in batch["events"]]
    assert any(e["kind"] == "log" and "lost" in e["text"] for e in events)
    assert [e["value"] for e in events if e["kind"] == "counter"][-1] == lost["final"]

    _, locked_finished = results[locked["run"]]
    assert locked_finished["status"] == "succeeded"
    kept = locked_finished["summary"]
    assert kept["expected"] == kept["final"] == expected and kept["lost"] == 0


def test_the_race_conditions_lesson_embeds_the_await_race():
    rendered = render_lesson_markdown((shipped_courses()[0] / LESSON).read_text())
    assert "await-race" in rendered.demo_slugs
    assert 'data-demo="await-race"' in rendered.html


async def test_no_await_between_read_and_write_loses_nothing_though_the_tasks_take_turns():
    from demos.events import EventRecorder
    from demos.library import await_race
    from demos.params import validate_params

    params = validate_params(await_race, {"mode": "no-await"})
    summary = await await_race.run(params, EventRecorder())
    assert summary["expected"] == params["tasks"] * params["increments"] == summary["final"]
    assert summary["lost"] == 0
    # They interleaved at the await after each write: nearly every increment came from another task.
    assert summary["task_switches"] >= summary["expected"] // 2
    assert "no update was lost" in summary["text"]


def test_await_race_refuses_an_unknown_mode():
    from demos.library import await_race
    from demos.params import ParamError, validate_params

    with pytest.raises(ParamError):
        validate_params(await_race, {"mode": "no-lock"})


def test_the_race_conditions_lesson_compares_no_await_with_unsafe():
    rendered = render_lesson_markdown((shipped_courses()[0] / LESSON).read_text())
    assert rendered.demo_slugs.count("await-race") == 2
    assert "no-await" in rendered.html
