"""gather-vs-loop: gather overlaps the waits, uncapped fan-out overruns the service, a semaphore loses nothing."""
import pytest

from lessons.rendering import render_lesson_markdown
from lessons.services import shipped_courses
from tests.demos.helpers import demo_socket, receive_runs, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

LESSON = "08-common-async-mistakes.md"


async def test_gather_overlaps_fan_out_overruns_and_the_cap_keeps_everything():
    async with demo_socket() as socket:
        loop = await start_run(socket, "gather-vs-loop", {"mode": "loop"}, ref="loop")
        gather = await start_run(socket, "gather-vs-loop", {}, ref="gather")
        first = await receive_runs(socket, [loop["run"], gather["run"]], timeout=40)
        capped = await start_run(socket, "gather-vs-loop", {"mode": "capped"}, ref="capped")
        second = await receive_until_finished(socket, capped["run"], timeout=40)
    results = {"loop": first[loop["run"]], "gather": first[gather["run"]], "capped": second}
    for _, finished in results.values():
        assert finished["status"] == "succeeded", finished
    summary = {mode: finished["summary"] for mode, (_, finished) in results.items()}
    params = gather["params"]
    assert gather["params"]["mode"] == "gather"
    assert params["calls"] > params["limit"] >= params["cap"]  # the defaults make the point

    # One call at a time takes the sum of the waits; gather about one wait.
    assert summary["loop"]["max_in_flight"] == 1 and summary["loop"]["rejected"] == 0
    assert summary["loop"]["total_ms"] >= 0.95 * params["calls"] * params["call_ms"]
    assert summary["gather"]["total_ms"] * 5 < summary["loop"]["total_ms"]
    # Uncapped fan-out overruns the service: everything beyond its limit is turned away.
    assert summary["gather"]["max_in_flight"] == params["calls"]
    assert summary["gather"]["rejected"] == params["calls"] - params["limit"]
    # Capped: never more than `cap` in flight, nothing rejected, still far faster than the loop.
    assert summary["capped"]["max_in_flight"] == params["cap"]
    assert summary["capped"]["rejected"] == 0 and summary["capped"]["answered"] == params["calls"]
    assert summary["capped"]["total_ms"] * 3 < summary["loop"]["total_ms"]
    for mode in summary:
        assert str(round(summary[mode]["total_ms"])) in summary[mode]["text"]

    gather_events = [event for batch in results["gather"][0] for event in batch["events"]]
    failed = {e["lane"] for e in gather_events if e["kind"] == "state" and e["state"] == "failed"}
    assert len(failed) == summary["gather"]["rejected"]


async def test_the_largest_fan_out_runs_in_chunks_and_overruns_the_service():
    async with demo_socket() as socket:
        accepted = await start_run(socket, "gather-vs-loop", {"mode": "gather", "calls": 500})
        _, finished = await receive_until_finished(socket, accepted["run"])
    assert finished["status"] == "succeeded"
    summary = finished["summary"]
    # Tasks start in chunks, so some early rejections may be over before the last chunk starts.
    assert summary["max_in_flight"] > 5 * accepted["params"]["limit"] and summary["rejected"] > 0
    assert summary["answered"] + summary["rejected"] == 500


def test_the_async_mistakes_lesson_embeds_both_compares():
    rendered = render_lesson_markdown((shipped_courses()[0] / LESSON).read_text())
    assert rendered.demo_slugs.count("gather-vs-loop") == 2
    assert 'data-demo="gather-vs-loop"' in rendered.html
