"""swallowed-errors: fire-and-forget and plain gather lose failures; a TaskGroup hands every one to its caller."""

import pytest

from demos.events import EventRecorder
from demos.library import swallowed_errors
from demos.params import ParamError, validate_params
from demos.supervisor import RunEmitter
from lessons.rendering import render_lesson_markdown
from lessons.services import shipped_courses

LESSON = "08-common-async-mistakes.md"


def run_at_defaults(**overrides):
    """The demo's own run, as a worker runs it, at its defaults apart from `overrides`."""
    recorder = EventRecorder()
    emit = RunEmitter(recorder, time_limit_s=swallowed_errors.time_limit_s)
    summary = swallowed_errors.run(validate_params(swallowed_errors, overrides), emit)
    return summary, recorder.stored


def test_fire_and_forget_failures_reach_nobody_and_only_the_log_records_them():
    summary, events = run_at_defaults()
    defaults = validate_params(swallowed_errors, {})
    assert summary["errors_raised"] == defaults["failing"] == 3
    assert summary["errors_seen"] == 0
    assert summary["still_running_after_return"] == defaults["tasks"]
    # Unreferenced, each failed task is freed as it fails, and asyncio's "never retrieved" line comes then.
    assert summary["log_lines"] == summary["errors_raised"] and summary["log_lines_at_teardown"] == 0
    assert summary["log_delay_ms"] < 50
    logged = [e["text"] for e in events if e["kind"] == "log" and e["text"].startswith("asyncio logged")]
    assert len(logged) == 3 and all("Task exception was never retrieved" in line for line in logged)
    assert {"ValueError('task 1 failed')", "ValueError('task 3 failed')"} <= {line.rsplit(": ", 1)[1] for line in logged}
    assert "saw 0" in summary["text"]


def test_kept_references_hold_back_even_the_log_line_until_they_are_dropped():
    summary, _ = run_at_defaults(keep_references=True)
    assert summary["errors_raised"] == 3 and summary["errors_seen"] == 0
    assert summary["log_lines"] == summary["log_lines_at_teardown"] == 3


def test_plain_gather_shows_one_error_and_the_rest_vanish_without_a_log_line():
    summary, events = run_at_defaults(mode="gather")
    assert summary["errors_raised"] == 3
    assert summary["errors_seen"] == 1 < summary["errors_raised"]
    assert summary["log_lines"] == 0
    assert summary["siblings_cancelled"] == 0
    assert summary["still_running_after_return"] == 3  # the three that succeed later
    assert [e for e in events if e["kind"] == "state" and e["state"] == "done" and e["lane"] > 3]


def test_gather_also_silences_failures_that_come_after_the_caller_moved_on():
    summary, _ = run_at_defaults(mode="gather", stagger_ms=60)
    assert summary["errors_raised"] == 3 and summary["errors_seen"] == 1 and summary["log_lines"] == 0
    assert summary["still_running_after_return"] == 5
    assert "2 of them after the caller had moved on" in summary["text"]


def test_gather_return_exceptions_hands_every_error_back_as_a_result():
    summary, _ = run_at_defaults(mode="gather-return-exceptions")
    assert summary["errors_seen"] == summary["errors_raised"] == 3
    assert summary["log_lines"] == 0 and summary["still_running_after_return"] == 0


def test_taskgroup_surfaces_every_failure_and_cancels_the_siblings():
    summary, events = run_at_defaults(mode="taskgroup")
    assert summary["errors_seen"] == summary["errors_raised"] == 3
    assert summary["siblings_cancelled"] == 3
    assert summary["still_running_after_return"] == 0
    assert summary["log_lines"] == 0
    assert sum(1 for e in events if e["kind"] == "log" and "cancelled" in e["text"]) == 3
    assert "all 3 errors" in summary["text"]


def test_bad_params_are_refused():
    for bad in ({"mode": "ignore"}, {"tasks": 21}, {"failing": 0}, {"tasks": 3, "failing": 4},
                {"mode": "gather", "keep_references": True}):
        with pytest.raises(ParamError):
            validate_params(swallowed_errors, bad)


def test_the_common_mistakes_lesson_embeds_the_demo():
    rendered = render_lesson_markdown((shipped_courses()[0] / LESSON).read_text())
    assert "swallowed-errors" in rendered.demo_slugs
    assert 'data-demo="swallowed-errors"' in rendered.html
