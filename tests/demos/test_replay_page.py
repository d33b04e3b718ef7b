"""The replay page /runs/<id>/ as the server renders it: a compare replays both sides from either permalink,
a run links back to the lesson block it was started from (only when that block is real), and the page reads
without JavaScript (the summary and a table of the first events)."""
import html
import uuid

import pytest

from demos.models import Run
from demos.views import EVENTS_IN_TABLE
from tests.demos.helpers import demo_socket, receive_runs, receive_until_finished

# Runs go through the suite's real Daphne, which writes the records: the data must be committed.
pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

LESSON = "/concurrency-and-async/one-cook-many-dishes/"  # its demo block 1 is one-cook
OTHER_LESSON = "/concurrency-and-async/concurrency-vs-parallelism/"  # its demo block 1 is another demo
SMALL = {"requests": 3, "wait_ms": 10}


async def _run(socket, ref: str, **extra) -> dict:
    """Start a small one-cook run with extra fields in its `run` message; its `accepted`, once it has finished."""
    await socket.send_json_to({"type": "run", "demo": "one-cook", "params": SMALL, "ref": ref, **extra})
    accepted = await socket.receive_json_from(timeout=10)
    assert accepted["type"] == "accepted", accepted
    await receive_until_finished(socket, accepted["run"])
    return accepted


async def test_either_permalink_of_a_compare_replays_both_sides(async_client):
    group = str(uuid.uuid4())
    async with demo_socket() as socket:
        for side, requests in (("A", 2), ("B", 4)):
            await socket.send_json_to({"type": "run", "demo": "one-cook", "params": {**SMALL, "requests": requests},
                                       "ref": side, "compare": {"group": group, "side": side}})
        accepted = {}
        while len(accepted) < 2:
            message = await socket.receive_json_from(timeout=10)
            if message["type"] == "accepted":
                accepted[message["ref"]] = message["run"]
        await receive_runs(socket, list(accepted.values()))
    run_a, run_b = accepted["A"], accepted["B"]
    for this, other, side in ((run_a, run_b, "A"), (run_b, run_a, "B")):
        body = (await async_client.get(f"/api/runs/{this}/")).json()
        assert body["compare"] == {"side": side, "partner": other}
        page = (await async_client.get(f"/runs/{this}/")).content.decode()
        assert f'data-partner-url="/api/runs/{other}/"' in page
        # Without JavaScript both summaries are there, A first whichever permalink was opened.
        assert page.index("Run A: Succeeded") < page.index("Run B: Succeeded")
        assert "2 requests" in page and "4 requests" in page
    lone = await async_client.get(f"/api/runs/{run_a}/")
    assert "group" not in lone.json()["compare"], "the group id stays on the server"


async def test_a_malformed_compare_is_refused_with_a_clear_error_and_the_socket_stays_open():
    async with demo_socket() as socket:
        await socket.send_json_to({"type": "run", "demo": "one-cook", "params": SMALL, "ref": "x",
                                   "compare": {"group": "not-a-uuid", "side": "A"}})
        error = await socket.receive_json_from(timeout=10)
        assert error["type"] == "error" and error["code"] == "bad_message" and error["ref"] == "x"
        assert "compare" in error["message"]
        accepted = await _run(socket, "y", compare={"group": str(uuid.uuid4()), "side": "B"})
    run = await Run.objects.aget(id=accepted["run"])
    assert run.compare_side == "B"


async def test_the_replay_links_back_to_the_lesson_and_demo_block_it_came_from(course, async_client):
    lesson_page = (await async_client.get(LESSON)).content.decode()
    assert 'id="demo-1" data-demo="one-cook"' in lesson_page
    async with demo_socket() as socket:
        accepted = await _run(socket, "o", origin={"path": LESSON, "block": 1})
    run = await Run.objects.select_related("origin_lesson").aget(id=accepted["run"])
    assert run.origin_block == 1 and run.origin_lesson is not None
    page = (await async_client.get(f"/runs/{accepted['run']}/")).content.decode()
    link = f'<a href="{LESSON}#demo-1">Back to {html.escape(run.origin_lesson.title)}, demo block 1</a>'
    assert link in page
    body = (await async_client.get(f"/api/runs/{accepted['run']}/")).json()
    assert body["origin"] == {"url": f"{LESSON}#demo-1", "lesson": run.origin_lesson.title, "block": 1}


BAD_ORIGINS = {
    "block out of range": {"path": LESSON, "block": 2},  # the lesson has one demo block
    "block of another demo": {"path": OTHER_LESSON, "block": 1},
    "no such lesson": {"path": "/concurrency-and-async/no-such-lesson/", "block": 1},
    "a page, not a lesson": {"path": "/admin/", "block": 1},
    "block not a number": {"path": LESSON, "block": "1"},
    "not a path": {"path": "https://elsewhere.example/", "block": 1},
    "not an object": "nonsense",
}


async def test_a_bad_origin_is_ignored_and_not_stored(course, async_client):
    async with demo_socket() as socket:
        started = {case: await _run(socket, case[:20], origin=origin) for case, origin in BAD_ORIGINS.items()}
    for case, accepted in started.items():
        run = await Run.objects.aget(id=accepted["run"])
        assert run.status == "succeeded", f"{case}: the run itself is not refused"
        assert (run.origin_lesson_id, run.origin_block) == (None, None), case
        page = (await async_client.get(f"/runs/{accepted['run']}/")).content.decode()
        assert "Back to" not in page, case


async def test_without_javascript_the_page_shows_the_summary_and_a_table_of_the_first_events(async_client):
    async with demo_socket() as socket:
        await socket.send_json_to({"type": "run", "demo": "one-cook", "params": {**SMALL, "requests": 30}, "ref": "t"})
        accepted = await socket.receive_json_from(timeout=10)
        batches, finished = await receive_until_finished(socket, accepted["run"])
    events = [event for batch in batches for event in batch["events"]]
    assert len(events) > EVENTS_IN_TABLE
    page = (await async_client.get(f"/runs/{accepted['run']}/")).content.decode()
    assert html.escape(finished["summary"]["text"]) in page
    assert f"The first {EVENTS_IN_TABLE} of {len(events)} events" in page
    table = page[page.index('<table class="replay-events">'):page.index("</table>")]
    assert table.count("<tr>") == EVENTS_IN_TABLE + 1  # a header row, then one row per event
    assert '<th scope="col">Time (ms)</th>' in table
