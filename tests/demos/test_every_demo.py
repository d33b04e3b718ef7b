"""Completeness over the registry: every demo runs, guards its parameters, and is embedded in a lesson."""
import re

import pytest

from demos.registry import library_demos
from lessons.services import shipped_courses
from tests.demos.helpers import demo_socket, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

DEMOS = library_demos()
IDS = [demo.slug for demo in DEMOS]


def _embedded_slugs() -> set[str]:
    slugs = set()
    for course in shipped_courses():
        for path in course.glob("*.md"):
            # A step-mode block (```demo-steps slug) embeds its demo as much as a run block does.
            slugs |= set(re.findall(r"^```demo(?:-steps)?\s+([a-z0-9-]+)", path.read_text(), flags=re.M))
    return slugs


@pytest.mark.parametrize("demo", DEMOS, ids=IDS)
def test_demo_is_embedded_by_a_lesson(demo):
    assert demo.slug in _embedded_slugs(), f"no lesson embeds {demo.slug}"


@pytest.mark.parametrize("demo", DEMOS, ids=IDS)
def test_demo_declares_itself_fully(demo):
    assert demo.__doc__ and len(demo.__doc__.strip()) > 40
    assert demo.title and demo.concept and demo.lanes
    assert 0 < demo.time_limit_s <= 120
    for param in demo.params:
        described = param.describe()
        assert described["default"] is not None
        if described["type"] == "int":
            assert described["min"] <= described["default"] <= described["max"]


@pytest.mark.parametrize("demo", DEMOS, ids=IDS)
async def test_demo_runs_to_a_summary_with_small_parameters(demo, celery_worker_process, reset_worker_cache):
    async with demo_socket() as socket:
        accepted = await start_run(socket, demo.slug, getattr(demo, "smoke_params", {}))
        batches, finished = await receive_until_finished(socket, accepted["run"], timeout=demo.time_limit_s + 15)
    assert finished["status"] == "succeeded", finished
    assert isinstance(finished["summary"].get("text"), str) and finished["summary"]["text"]
    assert [batch["seq"] for batch in batches] == list(range(len(batches)))


@pytest.mark.parametrize("demo", DEMOS, ids=IDS)
async def test_demo_rejects_out_of_bounds_and_unknown_parameters(demo):
    bad_values = [({"no_such_parameter": 1}, "no_such_parameter")]
    for param in demo.params:
        described = param.describe()
        if described["type"] == "int":
            bad_values.append(({param.name: described["max"] + 1}, param.name))
            bad_values.append(({param.name: described["min"] - 1}, param.name))
        elif described["type"] == "choice":
            bad_values.append(({param.name: "not-a-choice"}, param.name))
    async with demo_socket() as socket:
        for params, named in bad_values:
            await socket.send_json_to({"type": "run", "demo": demo.slug, "params": params, "ref": "bad"})
            error = await socket.receive_json_from(timeout=5)
            assert error["type"] == "error" and error["code"] == "invalid_params", error
            assert named in error["message"]
