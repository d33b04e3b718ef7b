"""The HTTP side: the demo list, one demo with its source, a recorded run and its replay page."""
import html

import pytest

from demos.registry import DEMOS
from tests.demos.helpers import demo_socket, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]


def test_demo_list_describes_every_demo(client):
    body = client.get("/api/demos/").json()
    listed = {demo["slug"]: demo for demo in body["demos"]}
    assert set(listed) == set(DEMOS)
    one_cook = listed["one-cook"]
    assert one_cook["placement"] == "loop" and one_cook["concept"]
    params = {param["name"]: param for param in one_cook["params"]}
    assert params["mode"]["choices"] == ["sequential", "concurrent"]
    assert params["requests"]["min"] == 1 and params["requests"]["max"] >= 10_000


def test_demo_detail_includes_highlighted_source(client):
    body = client.get("/api/demos/one-cook/").json()
    assert body["source_path"].endswith("demos/library/one_cook.py")
    assert '<span class="k">async</span>' in body["source_html"]
    assert client.get("/api/demos/nope/").status_code == 404


async def test_a_recorded_run_is_served_and_replayable(async_client):
    async with demo_socket() as socket:
        accepted = await start_run(socket, "one-cook", {"requests": 3, "wait_ms": 20, "jitter_ms": 0})
        batches, finished = await receive_until_finished(socket, accepted["run"])
    response = await async_client.get(f"/api/runs/{accepted['run']}/")
    body = response.json()
    assert body["status"] == "succeeded" and body["demo"] == "one-cook"
    assert body["params"] == accepted["params"] and body["summary"] == finished["summary"]
    assert body["events"] == [event for batch in batches for event in batch["events"]]
    page = (await async_client.get(f"/runs/{accepted['run']}/")).content.decode()
    assert 'class="demo-replay"' in page and f"/api/runs/{accepted['run']}/" in page
    assert html.escape(finished["summary"]["text"]) in page  # as the template escapes it (' is &#x27;)


def test_unknown_run_is_404(client):
    assert client.get("/api/runs/00000000-0000-0000-0000-000000000000/").status_code == 404
    assert client.get("/runs/00000000-0000-0000-0000-000000000000/").status_code == 404
