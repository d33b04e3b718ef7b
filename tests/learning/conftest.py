"""A lesson with prediction blocks and finished runs to check guesses against, for the learning tests.

Until the prediction block parser lands, `Lesson.blocks` is set directly after the lesson is
saved, in the shape the issue 16 contract gives (save() would re-render it from the Markdown).
"""
from __future__ import annotations

import secrets
import uuid

import pytest

from demos.models import Run
from lessons.models import Course, Lesson

DEMO_BODY = "## Waiting\n\nTen waits at once.\n\n```demo one-cook\nrequests: 3\nwait_ms: 20\nio: timer\n```\n"
COMPARE_BODY = ("## Two ways\n\n```demo one-cook\nmode: sequential\nrequests: 3\nwait_ms: 20\nio: timer\n---\n"
                "mode: concurrent\nrequests: 3\nwait_ms: 20\nio: timer\n```\n")

TOTAL = {"id": "total-time", "kind": "prediction", "line": 8, "demo": "one-cook", "demo_block": 0, "compare": False,
         "question": "How long will the three waits take?", "answer": "number", "key": "total_ms", "measure": "value",
         "unit": "ms", "tolerance": {"relative": 0.25}, "range": [0, 20000], "choices": None,
         "explain": "The waits overlap."}
COUNT = {"id": "how-many", "kind": "prediction", "line": 20, "demo": "one-cook", "demo_block": 0, "compare": False,
         "question": "How many requests?", "answer": "choice", "key": "requests", "measure": "value", "unit": "",
         "tolerance": None, "range": None,
         "choices": [{"key": "3", "label": "Three"}, {"key": "5", "label": "Five"}, {"key": "10", "label": "Ten"}],
         "explain": "As many as asked."}
QUIZ = {"id": "quiz-1", "kind": "quiz", "line": 30, "question": "Which?", "answer": "choice",
        "choices": [{"key": "a", "label": "A", "correct": True, "explain": "yes"}], "number": None, "tolerance": None,
        "unit": "", "explain": ""}
FASTER = {"id": "which-first", "kind": "prediction", "line": 9, "demo": "one-cook", "demo_block": 0, "compare": True,
          "question": "Which finishes first?", "answer": "choice", "key": "total_ms", "measure": "faster", "unit": "",
          "tolerance": None, "range": None,
          "choices": [{"key": "A", "label": "Sequential"}, {"key": "B", "label": "Concurrent"},
                      {"key": "same", "label": "About the same"}], "explain": "Overlap wins."}
RATIO = {**FASTER, "id": "how-much", "answer": "number", "measure": "ratio", "unit": "x", "tolerance": {"absolute": 0.5},
         "range": [1, 100], "choices": None}


def new_token() -> str:
    """A reader token as a browser makes one."""
    return secrets.token_urlsafe(16)


def new_address() -> str:
    """A client address of its own for each test, so the per-address limit of one test never touches another."""
    return f"10.{secrets.randbelow(250)}.{secrets.randbelow(250)}.{secrets.randbelow(250) + 1}"


def make_lesson(*, slug: str, body: str, blocks: list[dict], published: bool = True) -> Lesson:
    """A saved lesson of its own course whose `blocks` are the given dicts."""
    course, _ = Course.objects.get_or_create(slug="learning-tests", defaults={"title": "Learning tests"})
    lesson = Lesson.objects.create(course=course, title=slug.replace("-", " ").title(), slug=slug, body=body,
                                   published=published)
    Lesson.objects.filter(id=lesson.id).update(blocks=blocks)
    lesson.refresh_from_db()
    return lesson


def make_run(*, demo: str = "one-cook", status: str = Run.Status.SUCCEEDED, **summary) -> Run:
    """A recorded run with this summary (as the engine writes one when a run ends)."""
    return Run.objects.create(id=uuid.uuid4(), demo=demo, placement="loop", status=status,
                              summary={"text": "A run.", **summary})


@pytest.fixture
def lesson(db):
    return make_lesson(slug="waiting", body=DEMO_BODY, blocks=[TOTAL, COUNT, QUIZ])


@pytest.fixture
def compare_lesson(db):
    return make_lesson(slug="two-ways", body=COMPARE_BODY, blocks=[FASTER, RATIO])
