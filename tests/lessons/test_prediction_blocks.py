"""An author attaches predictions to demo blocks: they are checked against the demo, stored, and rendered."""
import html
import json
import re

import pytest

from lessons.models import Course, Lesson
from lessons.predictions import is_close, measured_value
from lessons.rendering import LessonRenderError, render_lesson_markdown

ONE_RUN = """## Waiting together

```demo one-cook
io: timer
requests: 4
wait_ms: 50
```

```prediction
id: four-waits
question: Four requests each wait about 50 ms. How long do all four take together?
answer: number
key: total_ms
tolerance: 40%
range: 0..2000
explain: The waits overlap, so the total is about one wait.
```

```prediction
question: Which grows the total more?
answer: choice
key: requests
choices: 4 = Four requests | 5 = Five requests
explain: The run reports how many it served.
```
"""

COMPARE = """```demo one-cook
io: timer
mode: sequential
requests: 4
wait_ms: 50
---
io: timer
mode: concurrent
requests: 4
wait_ms: 50
```

```prediction
question: Which finishes first?
answer: choice
measure: faster
key: total_ms
choices: A = A, one after another | B = B, all at once | same = About the same
explain: B overlaps its waits.
```

```prediction
question: By how much?
answer: number
measure: ratio
key: total_ms
tolerance: 50%
explain: Four waits against one.
```
"""


def _errors(source):
    with pytest.raises(LessonRenderError) as caught:
        render_lesson_markdown(source)
    return caught.value


def test_a_prediction_is_stored_with_its_demo_block_and_the_demos_unit():
    blocks = render_lesson_markdown(ONE_RUN).blocks
    assert [block["id"] for block in blocks] == ["four-waits", "prediction-2"]
    first = blocks[0]
    assert first == {
        "id": "four-waits", "kind": "prediction", "line": 9, "demo": "one-cook", "demo_block": 0, "demo_section": "demo-1",
        "compare": False, "question": "Four requests each wait about 50 ms. How long do all four take together?",
        "answer": "number", "key": "total_ms", "measure": "value", "unit": "ms", "tolerance": {"relative": 0.4},
        "range": [0.0, 2000.0], "choices": None, "explain": "The waits overlap, so the total is about one wait.",
    }
    assert blocks[1]["choices"] == [{"key": "4", "label": "Four requests"}, {"key": "5", "label": "Five requests"}]
    # The server's rule reads a summary as the browser's does (static/js/lessons/closeness.js).
    assert measured_value(blocks[1], [{"requests": 4}]) == measured_value(blocks[1], [{"requests": 4.0}]) == "4"
    assert is_close(blocks[1], "4", "4") is True and is_close(blocks[1], "5", "4") is False
    assert measured_value(first, [{"total_ms": 61.5}]) == 61.5 and is_close(first, 80, 61.5) is True
    assert is_close(first, 90, 61.5) is False and measured_value(first, [{}]) is None


def test_the_html_carries_the_block_and_a_note_for_readers_without_javascript():
    rendered = render_lesson_markdown(ONE_RUN).html
    assert '<section class="demo" id="demo-1" data-demo="one-cook"' in rendered
    match = re.search(r'<div class="prediction" id="four-waits" data-prediction="([^"]+)">', rendered)
    assert match, rendered
    assert json.loads(html.unescape(match.group(1)))["key"] == "total_ms"
    assert "How long do all four take together?" in rendered
    assert "Run the demo to check your guess (needs JavaScript)." in rendered
    assert "<details" in rendered and "The waits overlap" in rendered


def test_after_a_compare_block_predictions_ask_which_side_is_faster_and_by_how_much():
    blocks = render_lesson_markdown(COMPARE).blocks
    assert [(block["compare"], block["measure"], block["unit"]) for block in blocks] == [(True, "faster", "ms"), (True, "ratio", "x")]
    faster, ratio = blocks
    sides = [{"total_ms": 212.0}, {"total_ms": 54.0}]
    assert measured_value(faster, sides) == "B" and is_close(faster, "B", "B") is True
    assert measured_value(faster, [{"total_ms": 100.0}, {"total_ms": 105.0}]) == "same"
    assert measured_value(ratio, sides) == pytest.approx(212 / 54)
    assert is_close(ratio, 4, measured_value(ratio, sides)) is True
    assert is_close(ratio, 1.5, measured_value(ratio, sides)) is False
    assert is_close(ratio, None, 3.9) is None


def test_every_prediction_error_is_reported_at_once_with_its_line():
    source = """```demo one-cook
```

```prediction
question: How long?
answer: number
key: total_seconds
unit: s
explain: Because.
```

Some words.

```prediction
question: Orphan?
answer: choice
key: requests
choices: only one
explain: x
```

```demo one-cook
```

```prediction
question: Which side?
answer: choice
measure: faster
key: total_ms
choices: A = a | B = b
explain: x
```
"""
    error = _errors(source)
    lines = [line for line, _ in error.errors]
    assert lines == sorted(lines)
    text = str(error)
    assert text.startswith(f"{len(error.errors)} problems in this lesson:")
    assert "line 7: one-cook reports no summary key 'total_seconds'" in text
    assert "line 4: a number prediction needs `tolerance:`" in text
    assert "line 14: a prediction comes right after the ```demo block" in text
    assert "line 18: each choice reads `KEY = label`" in text
    assert "line 28: `measure: faster` compares two runs" in text


def test_a_unit_that_differs_from_the_demos_and_a_bad_tolerance_are_refused():
    error = _errors("```demo one-cook\n```\n\n```prediction\nquestion: q\nanswer: number\nkey: total_ms\nunit: s\n"
                    "tolerance: lots\nrange: 9..1\nexplain: e\nnotes: x\n```\n")
    messages = dict(error.errors)
    assert "measured in 'ms'" in messages[8]
    assert "`tolerance:` is a number" in messages[9]
    assert "`range:` reads `LOW..HIGH`" in messages[10]
    assert "has no field `notes`" in messages[12]


def test_duplicate_ids_are_an_author_error():
    error = _errors(ONE_RUN.replace("```prediction\nquestion: Which", "```prediction\nid: four-waits\nquestion: Which"))
    assert any("id 'four-waits' is already used (line 9)" in message for _, message in error.errors)


def test_near_miss_fence_headers_are_flagged_not_kept_as_code():
    source = "```demo: one-cook\n```\n\n```Demo one-cook\n```\n\n```predicton\nquestion: q\n```\n\n```demo one-cok\n```\n\n```python\nprint(1)\n```\n"
    error = _errors(source)
    messages = dict(error.errors)
    assert set(messages) == {1, 4, 7, 11}
    assert "write ```demo one-cook" in messages[1] and "write ```demo one-cook" in messages[4]
    assert "misspelt prediction block" in messages[7]
    assert "did you mean 'one-cook'?" in messages[11]


@pytest.mark.django_db
def test_saving_a_lesson_stores_its_blocks_and_the_admin_lists_every_error(admin_client):
    course = Course.objects.create(title="Async", slug="async")
    lesson = Lesson.objects.create(course=course, title="Waits", slug="waits", body=ONE_RUN)
    lesson.refresh_from_db()
    assert [block["id"] for block in lesson.blocks] == ["four-waits", "prediction-2"]
    response = admin_client.post("/admin/lessons/lesson/add/", {
        "course": course.pk, "kind": "lesson", "title": "Broken", "slug": "broken", "position": 2, "summary": "",
        "body": "```demo: one-cook\n```\n\n```prediction\nquestion: q\n```\n\n```quiz\nquestion: q\n```\n", "published": "on",
    })
    assert response.status_code == 200
    page = response.content.decode()
    errorlist = re.search(r'<ul class="errorlist"[^>]*>(.*?)</ul>', page, re.S).group(1)
    items = re.findall(r"<li>(.*?)</li>", errorlist, re.S)
    assert len(items) >= 3
    assert items[0].startswith("line 1:") and any(item.startswith("line 4:") for item in items)
    assert any(item.startswith("line 8:") for item in items)
    assert not Lesson.objects.filter(slug="broken").exists()
