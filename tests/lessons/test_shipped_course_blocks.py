"""The shipped course asks before it shows: every lesson carries a prediction on a demo and check questions.

The course is loaded as `make run` loads it (lessons.services.course_load, the real renderer), and the
blocks are read back from what each saved lesson stored, so a block the parser rejected or dropped
counts as missing. Reference pages (kind "reference") need none.
"""
import pytest
from django.db import transaction

from demos.registry import library_demos
from lessons.models import Lesson
from lessons.services import course_load, shipped_courses

# The tests read only what the fixture loaded, but the mark is what makes pytest-django create the test database.
pytestmark = pytest.mark.django_db

MIN_QUIZZES = 3


@pytest.fixture(scope="module")
def shipped_lessons(django_db_setup, django_db_blocker) -> list[Lesson]:
    """The saved lessons (kind "lesson"), loaded once for the module and rolled back afterwards."""
    with django_db_blocker.unblock(), transaction.atomic():
        for directory in shipped_courses():
            course_load(directory=directory)
        lessons = list(Lesson.objects.filter(kind=Lesson.Kind.LESSON).order_by("course__slug", "position"))
        transaction.set_rollback(True)  # leave the test database as other tests expect it
    return lessons


def _of_kind(lesson: Lesson, kind: str) -> list[dict]:
    return [block for block in lesson.blocks if block["kind"] == kind]


def test_every_lesson_asks_for_a_prediction_on_one_of_its_demos(shipped_lessons):
    demos = {demo.slug: demo for demo in library_demos()}
    assert shipped_lessons
    missing = [lesson.slug for lesson in shipped_lessons if not _of_kind(lesson, "prediction")]
    assert not missing, f"lessons without a prediction: {missing}"
    for lesson in shipped_lessons:
        for prediction in _of_kind(lesson, "prediction"):
            where = f"{lesson.slug}, {prediction['id']}"
            assert prediction["demo"] in demos, where
            assert isinstance(prediction["demo_block"], int) and prediction["demo_block"] >= 0, where
            # The key must be one the demo declares, or the widget has nothing to compare the guess with.
            assert prediction["key"] in getattr(demos[prediction["demo"]], "summary_fields", {}), where
            expected = ("faster", "ratio") if prediction["compare"] else ("value",)
            assert prediction["measure"] in expected, where
            assert prediction["question"] and prediction["explain"], where


def test_every_lesson_has_at_least_three_check_questions_with_an_explanation_for_each_answer(shipped_lessons):
    short = {lesson.slug: len(_of_kind(lesson, "quiz")) for lesson in shipped_lessons
             if len(_of_kind(lesson, "quiz")) < MIN_QUIZZES}
    assert not short, f"lessons with fewer than {MIN_QUIZZES} check questions: {short}"
    for lesson in shipped_lessons:
        for quiz in _of_kind(lesson, "quiz"):
            where = f"{lesson.slug}, {quiz['id']}"
            if quiz["answer"] == "choice":
                assert [choice["correct"] for choice in quiz["choices"]].count(True) == 1, where
                assert all(choice["explain"] for choice in quiz["choices"]), where
            else:
                assert quiz["number"] is not None and quiz["explain"], where

