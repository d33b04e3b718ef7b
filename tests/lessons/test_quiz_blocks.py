"""Check questions: parsed and stored when the author saves, readable as a list with the answers in <details> without JavaScript."""
import html
import json
import re
from html.parser import HTMLParser

import pytest

from lessons.rendering import LessonRenderError, render_lesson_markdown

CHOICE = """Read this first.

```quiz
id: sleep-in-coroutine
question: A coroutine calls `time.sleep(2)`. What do the loop's other tasks do meanwhile?
- [ ] They keep running on other threads. :: No. A loop runs its tasks on one thread.
- [x] They all wait for two seconds. :: Yes. The call holds the thread,
  so the loop cannot switch to anything else.
- [ ] Only tasks awaiting the same future wait. :: No. *Every* task waits.
```
"""

NUMBER = """```quiz
question: A pool has 4 threads and 12 requests each block for 100 ms. About how long until all are done?
answer: 300
tolerance: 10%
unit: ms
explain: Three rounds of four.
```
"""


class _Text(HTMLParser):
    """The text a reader sees, with the text inside <details> apart."""

    def __init__(self):
        super().__init__()
        self.depth = 0
        self.outside, self.inside = [], []

    def handle_starttag(self, tag, attrs):
        self.depth += tag == "details"

    def handle_endtag(self, tag):
        self.depth -= tag == "details"

    def handle_data(self, data):
        (self.inside if self.depth else self.outside).append(data)


def test_a_multiple_choice_quiz_is_stored_with_an_explanation_per_choice():
    [block] = render_lesson_markdown(CHOICE).blocks
    assert block["id"] == "sleep-in-coroutine" and block["kind"] == "quiz" and block["line"] == 3
    assert block["answer"] == "choice" and block["number"] is None
    assert [(choice["key"], choice["correct"]) for choice in block["choices"]] == [("a", False), ("b", True), ("c", False)]
    assert block["choices"][1]["explain"] == "Yes. The call holds the thread, so the loop cannot switch to anything else."


def test_without_javascript_the_choices_are_a_list_and_the_answers_sit_inside_details():
    rendered = render_lesson_markdown(CHOICE).html
    assert re.search(r'<div class="quiz" id="sleep-in-coroutine" data-quiz="[^"]+">', rendered)
    assert '<ol class="quiz-choices">' in rendered and rendered.count('<li class="quiz-choice"') == 3
    assert "<details" in rendered and "<summary>Answer</summary>" in rendered
    text = _Text()
    text.feed(rendered)
    outside, inside = " ".join(text.outside), " ".join(text.inside)
    assert "What do the loop's other tasks do meanwhile?" in outside and "They all wait for two seconds." in outside
    assert "Yes. The call holds the thread" not in outside, "explanations are behind the disclosure"
    assert "Right answer:" in inside and "Yes. The call holds the thread" in inside and "Every" in inside
    assert "<code>time.sleep(2)</code>" in rendered and "<em>Every</em>" in rendered


def test_a_numeric_quiz_reads_its_answer_tolerance_and_unit():
    [block] = render_lesson_markdown(NUMBER).blocks
    assert (block["answer"], block["number"], block["tolerance"], block["unit"]) == ("number", 300.0, {"relative": 0.1}, "ms")
    rendered = render_lesson_markdown(NUMBER).html
    assert "Right answer:</strong> 300 ms (within 10%)" in rendered
    data = re.search(r'data-quiz="([^"]+)"', rendered).group(1)
    assert json.loads(html.unescape(data))["explain"] == "Three rounds of four."


def test_default_ids_count_the_lessons_quizzes():
    blocks = render_lesson_markdown(NUMBER + "\n" + NUMBER).blocks
    assert [block["id"] for block in blocks] == ["quiz-1", "quiz-2"]


def test_every_quiz_error_is_reported_at_once_with_line_numbers():
    source = """```quiz
question: Two right answers?
- [x] One :: yes
- [x] Two :: also yes
```

```quiz
question: No explanations
- [ ] One
- [x] Two :: fine
```

```quiz
answer: many
explain: e
```

```quizz
question: typo
```

```quiz
question: Both kinds
answer: 3
- [x] three :: yes
```
"""
    with pytest.raises(LessonRenderError) as caught:
        render_lesson_markdown(source)
    messages = caught.value.errors
    found = {line: message for line, message in messages}
    assert "exactly one choice is marked `[x]`" in found[1] and "this quiz has 2" in found[1]
    assert "every choice carries its explanation after ` :: `" in found[9]
    assert "needs `question: ...`" in found[13]
    assert "`answer:` is the right number" in found[14]
    assert "misspelt quiz block" in found[18]
    assert "numeric (`answer: NUMBER`) or multiple choice" in found[25]
    assert "a numeric quiz needs `explain:`" in found[22]
    assert len(messages) == 7, messages
