"""POST /api/predictions/: a valid guess is stored once, measured from the stored run; every bad post writes nothing."""
from __future__ import annotations

import json

import pytest
from django.test import Client

from demos.models import Run
from learning.models import Prediction
from learning.services import reader_hash
from tests.learning.conftest import make_run, new_address, new_token

pytestmark = pytest.mark.django_db

URL = "/api/predictions/"
ORIGIN = "http://testserver"


def post(body, *, address: str | None = None, origin: str | None = ORIGIN, content_type: str = "application/json"):
    headers = {"HTTP_ORIGIN": origin} if origin else {}
    client = Client(REMOTE_ADDR=address or new_address())
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return client.post(URL, data=data, content_type=content_type, **headers)


@pytest.fixture
def run():
    return make_run(total_ms=230.0, requests=3)


def payload(for_lesson, run, **changes):
    return {"reader": new_token(), "lesson": for_lesson.id, "block": "total-time", "answer": 250, "runs": [str(run.id)],
            **changes}


def test_a_number_guess_is_stored_with_what_the_run_measured(lesson, run):
    token = new_token()
    response = post(payload(lesson, run, reader=token, answer=260))
    assert response.status_code == 201, response.content
    assert response.json() == {"measured": 230.0, "close": True, "explain": "The waits overlap."}
    stored = Prediction.objects.get()
    assert (stored.block, stored.demo, stored.answer_number, stored.measured_number, stored.close, stored.run_id) == (
        "total-time", "one-cook", 260.0, 230.0, True, run.id)
    # The reader is a keyed hash, never the token; no column holds an address.
    assert stored.reader == reader_hash(token) and token not in stored.reader
    assert not any("addr" in field.name or field.name == "ip" for field in Prediction._meta.fields)


def test_a_guess_outside_the_tolerance_is_stored_as_not_close(lesson, run):
    response = post(payload(lesson, run, answer=2300))
    assert response.status_code == 201 and response.json()["close"] is False


def test_the_server_measures_from_the_stored_run_not_from_the_client(lesson, run):
    body = payload(lesson, run, answer=230)
    body_with_claim = {**body, "measured": 230}
    assert post(body_with_claim).status_code == 400  # a client cannot even say what it measured
    assert post(body).json()["measured"] == 230.0


def test_a_choice_guess_and_a_skip(lesson, run):
    wrong = post(payload(lesson, run, block="how-many", answer="10"))
    assert wrong.status_code == 201 and wrong.json()["measured"] == "3" and wrong.json()["close"] is False
    skipped = post(payload(lesson, run, block="how-many", answer=None))
    assert skipped.status_code == 201 and skipped.json()["close"] is None
    assert sorted(Prediction.objects.values_list("skipped", "answer_choice")) == [(False, "10"), (True, "")]


def test_compare_predictions_check_which_side_was_faster_and_by_how_much(compare_lesson):
    side_a, side_b = make_run(total_ms=600.0), make_run(total_ms=200.0)
    runs = [str(side_a.id), str(side_b.id)]
    faster = post({"reader": new_token(), "lesson": compare_lesson.id, "block": "which-first", "answer": "B", "runs": runs})
    assert faster.status_code == 201 and faster.json()["measured"] == "B" and faster.json()["close"] is True
    ratio = post({"reader": new_token(), "lesson": compare_lesson.id, "block": "how-much", "answer": 2.8, "runs": runs})
    assert ratio.json()["measured"] == 3.0 and ratio.json()["close"] is True
    stored = Prediction.objects.get(block="how-much")
    assert (stored.run_id, stored.run_b_id) == (side_a.id, side_b.id)


BAD_POSTS = {
    "not JSON": (lambda c: "{reader:", "not valid JSON"),
    "a JSON list": (lambda c: [1, 2], "JSON object"),
    "a short reader token": (lambda c: payload(c["lesson"], c["run"], reader="abc"), "reader token"),
    "a reader token with spaces": (lambda c: payload(c["lesson"], c["run"], reader="a" * 21 + " "), "reader token"),
    "a missing field": (lambda c: {k: v for k, v in payload(c["lesson"], c["run"]).items() if k != "runs"}, "missing field(s) runs"),
    "an unknown field": (lambda c: payload(c["lesson"], c["run"], email="x@example.com"), "unknown field(s) email"),
    "a lesson id that is text": (lambda c: payload(c["lesson"], c["run"], lesson="waiting"), "whole number"),
    "an unknown lesson": (lambda c: payload(c["lesson"], c["run"], lesson=10**9), "no lesson"),
    "a draft lesson": (lambda c: payload(c["draft"], c["run"]), "no lesson"),
    "an unknown block": (lambda c: payload(c["lesson"], c["run"], block="nope"), "no prediction block 'nope'"),
    "a quiz block": (lambda c: payload(c["lesson"], c["run"], block="quiz-1"), "is a quiz, not a prediction"),
    "text for a number": (lambda c: payload(c["lesson"], c["run"], answer="250"), "takes a number"),
    "true for a number": (lambda c: payload(c["lesson"], c["run"], answer=True), "takes a number"),
    "a number out of range": (lambda c: payload(c["lesson"], c["run"], answer=20001), "between 0 and 20000"),
    "a negative number": (lambda c: payload(c["lesson"], c["run"], answer=-1), "between 0 and 20000"),
    "a number for a choice": (lambda c: payload(c["lesson"], c["run"], block="how-many", answer=3), "one of the choices 3, 5, 10"),
    "an unknown choice": (lambda c: payload(c["lesson"], c["run"], block="how-many", answer="4"), "one of the choices"),
    "runs not a list": (lambda c: payload(c["lesson"], c["run"], runs=str(c["run"].id)), "one run id"),
    "two runs for one demo": (lambda c: payload(c["lesson"], c["run"], runs=[str(c["run"].id)] * 2), "one run id"),
    "a run id that is no UUID": (lambda c: payload(c["lesson"], c["run"], runs=["run-1"]), "UUIDs"),
    "an unknown run": (lambda c: payload(c["lesson"], c["run"], runs=["00000000-0000-4000-8000-000000000000"]), "There is no run"),
    "a run still going": (lambda c: payload(c["lesson"], c["running"]), "has not finished"),
    "a run of another demo": (lambda c: payload(c["lesson"], c["other"]), "of the demo 'thread-pool'"),
    "one run for a compare": (lambda c: {**payload(c["compare"], c["run"]), "block": "which-first", "answer": "A"}, "two run ids"),
    "the same run on both sides": (lambda c: {**payload(c["compare"], c["run"], runs=[str(c["run"].id)] * 2),
                                              "block": "which-first", "answer": "A"}, "two different runs"),
}


@pytest.mark.parametrize("case", list(BAD_POSTS))
def test_a_bad_post_is_refused_in_words_and_writes_nothing(case, lesson, compare_lesson, run):
    from tests.learning.conftest import COUNT, TOTAL, make_lesson

    context = {
        "lesson": lesson, "compare": compare_lesson, "run": run,
        "draft": make_lesson(slug="draft", body="Draft.", blocks=[TOTAL, COUNT], published=False),
        "running": make_run(status=Run.Status.RUNNING),
        "other": make_run(demo="thread-pool", total_ms=10.0),
    }
    build, words = BAD_POSTS[case]
    response = post(build(context))
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid_prediction" and words in error["message"], error
    assert not Prediction.objects.exists()


def test_transport_refusals_say_what_is_wrong(lesson, run):
    body = payload(lesson, run)
    huge = post({**body, "padding": "x" * 10_000})
    assert huge.status_code == 413 and "at most 4096 bytes" in huge.json()["error"]["message"]
    assert post(body, origin="http://evil.example").status_code == 403
    assert post(body, origin=None).json()["error"]["code"] == "cross_origin"
    assert post(json.dumps(body), content_type="text/plain").status_code == 415
    assert Client().get(URL).status_code == 405
    assert not Prediction.objects.exists()


def test_one_reader_token_is_rate_limited(lesson, run, settings):
    settings.PREDICTIONS_PER_READER = 2
    token = new_token()
    statuses = [post(payload(lesson, run, reader=token)).status_code for _ in range(2)]
    refused = post(payload(lesson, run, reader=token))
    assert statuses == [201, 201] and refused.status_code == 429
    error = refused.json()["error"]
    assert error["code"] == "rate_limited" and "this browser" in error["message"]
    assert 1 <= error["retry_after_s"] <= settings.PREDICTION_RATE_WINDOW_S + 1
    assert Prediction.objects.count() == 2
    assert post(payload(lesson, run)).status_code == 201  # another reader is not held up


def test_one_address_is_rate_limited_whatever_tokens_it_sends(lesson, run, settings):
    settings.PREDICTIONS_PER_ADDRESS = 3
    address = new_address()
    statuses = [post(payload(lesson, run), address=address).status_code for _ in range(4)]
    assert statuses == [201, 201, 201, 429]
    assert "your address" in post(payload(lesson, run), address=address).json()["error"]["message"]
    assert Prediction.objects.count() == 3
