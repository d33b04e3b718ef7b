"""GET /api/demos/SLUG/recording/: the newest recorded run of a preset, offered to a reader the site turned away."""
import json

import pytest
from django.db import connection

from demos.models import Run
from demos.registry import get_demo, reader_code_demo
from demos.params import validate_params

pytestmark = pytest.mark.django_db


def _run(params, *, demo="one-cook", status="succeeded", group=None, side=""):
    values = validate_params(get_demo(demo), params)
    return Run.objects.create(demo=demo, placement="loop", params=values, status=status, compare_group=group,
                              compare_side=side, summary={"text": "done"}, events=[{"t": 1, "kind": "log", "text": "x"}])


def _ask(client, demo="one-cook", **query):
    return client.get(f"/api/demos/{demo}/recording/",
                      {name: value if isinstance(value, str) else json.dumps(value) for name, value in query.items()})


def test_the_newest_succeeded_run_with_the_same_settings_is_offered(client):
    preset = {"requests": 4, "wait_ms": 111, "mode": "concurrent"}
    _run(preset)
    newest = _run(preset)
    _run(preset, status="failed")  # newer, but not a recording worth watching
    _run({**preset, "requests": 5})  # other settings
    # Keys in another order, defaults spelled out or left out: the same preset.
    defaults = validate_params(get_demo("one-cook"), {})
    asked = {"mode": "concurrent", "jitter_ms": defaults["jitter_ms"], "wait_ms": 111, "requests": 4}
    response = _ask(client, params=asked)
    assert response.status_code == 200, response.content
    body = response.json()
    assert [run["run"] for run in body["runs"]] == [str(newest.id)]
    assert body["replay_url"] == f"/runs/{newest.id}/"
    assert body["runs"][0]["url"] == f"/api/runs/{newest.id}/"
    assert body["created_at"] == newest.created_at.isoformat()


def test_no_recording_of_a_preset_is_a_404_that_says_so(client):
    _run({"requests": 4, "wait_ms": 112}, status="cancelled")
    response = _ask(client, params={"requests": 4, "wait_ms": 112})
    assert response.status_code == 404
    assert response.json()["error"] == {"code": "no_recording",
                                        "message": "No finished run with these settings has been recorded yet."}
    assert _ask(client, demo="no-such-demo", params={}).json()["error"]["code"] == "unknown_demo"


def test_a_run_of_a_readers_own_program_is_never_offered(client):
    runner = reader_code_demo()
    program = {"code": "print('my own secret program')\n"}
    _run(program, demo=runner.slug)
    response = _ask(client, demo=runner.slug, params=program)
    assert response.status_code == 404
    body = response.json()
    assert body["error"]["code"] == "no_recording" and "reader's own program" in body["error"]["message"]
    assert "secret" not in response.content.decode()


@pytest.mark.parametrize("query, named", [
    ({"params": {"requests": 0}}, "requests"),
    ({"params": {"mode": "parallel"}}, "mode"),
    ({"params": {"speed": 3}}, "speed"),
    ({"params": "{not json"}, "`params` must be a JSON object"),
    ({"params": [1, 2]}, "params must be a JSON object"),
    ({"params": {}, "compare": {"requests": "many"}}, "requests"),
])
def test_bad_settings_are_a_400_naming_the_culprit(client, query, named):
    response = _ask(client, **query)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_params" and named in error["message"]


def test_a_compare_is_offered_only_when_both_of_its_sides_match_and_finished(client):
    import uuid

    a, b = {"requests": 3, "wait_ms": 113, "mode": "sequential"}, {"requests": 3, "wait_ms": 113, "mode": "concurrent"}
    whole = uuid.uuid4()
    side_a, side_b = _run(a, group=whole, side="A"), _run(b, group=whole, side="B")
    broken = uuid.uuid4()
    _run(a, group=broken, side="A"), _run(b, group=broken, side="B", status="timed_out")  # newer, B did not finish
    _run(a)  # a single run of A's settings is not a compare
    body = _ask(client, params=a, compare=b).json()
    assert [(run["run"], run["side"]) for run in body["runs"]] == [(str(side_a.id), "A"), (str(side_b.id), "B")]
    assert body["replay_url"] == f"/runs/{side_a.id}/"
    # The sides the other way round are another compare, and there is none.
    assert _ask(client, params=b, compare=a).status_code == 404


def test_the_lookup_is_answered_from_the_cache_the_second_time(client, django_assert_num_queries):
    preset = {"requests": 2, "wait_ms": 114}
    _run(preset)
    assert _ask(client, params=preset).status_code == 200
    with django_assert_num_queries(0):
        assert _ask(client, params=preset).status_code == 200


def test_the_lookup_can_use_its_index(client):
    from demos.views import _with_params

    query = _with_params("one-cook", validate_params(get_demo("one-cook"), {"wait_ms": 115}), compare_side="")[:1]
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        plan = query.explain()
    assert "run_recording_lookup" in plan, plan
