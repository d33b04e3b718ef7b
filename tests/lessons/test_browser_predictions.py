"""In a real browser a reader predicts, runs the demo, and sees the guess beside the measured value;
compare runs are predicted too; a check question is answered wrong, then right.

The lessons are made here (not taken from the shipped course); the demo is `one-cook` on timers, small and fast.
"""
import functools
import re
from pathlib import Path

import pytest
import pytest_asyncio
from asgiref.sync import sync_to_async
from django.conf import settings

from lessons.models import Course, Lesson
from tests.conftest import chromium

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True), pytest.mark.asyncio(loop_scope="module")]

PREDICT = """## Waiting together

```demo one-cook
io: timer
requests: 4
wait_ms: 60
jitter_ms: 0
```

```prediction
id: four-waits
question: Four requests each wait 60 ms, all at once. How long does the whole run take?
answer: number
key: total_ms
tolerance: 100%
range: 0..5000
explain: The waits overlap, so the run takes about one wait.
```
"""

COMPARE = """```demo one-cook
io: timer
mode: sequential
requests: 4
wait_ms: 40
jitter_ms: 0
---
io: timer
mode: concurrent
requests: 4
wait_ms: 40
jitter_ms: 0
```

```prediction
id: which-first
question: Which run finishes first?
answer: choice
measure: faster
key: total_ms
choices: A = A, one request after another | B = B, all four at once | same = About the same
explain: B overlaps its four waits; A adds them up.
```
"""

QUIZ = """```quiz
id: one-thread
question: A coroutine calls `time.sleep(2)`. What do the loop's other tasks do meanwhile?
- [ ] They keep running on other threads. :: No: every task of a loop shares the loop's one thread.
- [x] They all wait. :: Yes: the call holds the thread, so the loop cannot switch.
```
"""

# Record the page's block events, so the test sees what the progress script would hear.
RECORD_EVENTS = """
window.blockEvents = [];
for (const name of ["demo-finished", "prediction", "quiz-answered"]) {
  document.addEventListener("coursesite:" + name, (event) => window.blockEvents.push({name, detail: event.detail}));
}
"""


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def browser_context():
    async with chromium() as context:
        await context.add_init_script(RECORD_EVENTS)
        yield context


@pytest.fixture
def lesson_url(transactional_db, site_url):
    course = Course.objects.create(title="Predictions", slug="predictions")

    @sync_to_async
    def make(slug, body):
        lesson = Lesson.objects.create(course=course, title=slug.title(), slug=slug, body=body, published=True)
        return site_url + lesson.get_absolute_url()

    return make


async def _open(context, url):
    page = await context.new_page()
    problems = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    # A missing /api/predictions/ (or the refusal below) is a console error the page itself handles.
    page.on("console", lambda message: problems.append(message.text)
            if message.type == "error" and "Failed to load resource" not in message.text else None)
    await page.goto(url)
    for index in range(await page.locator("section.demo").count()):
        await page.locator("section.demo").nth(index).and_(page.locator('[data-widget-state="ready"]')).wait_for(timeout=15_000)
    return page, problems


AXE = Path(settings.BASE_DIR) / "node_modules" / "axe-core" / "axe.min.js"


@functools.cache
def _axe_source():
    return AXE.read_text() + "\n;true"


async def _serious_axe_findings(page, selector):
    """axe-core's serious and critical findings inside the blocks (light and dark alike: the page follows the system)."""
    # Evaluated through the DevTools protocol: the site's CSP rightly refuses injected <script> tags.
    await page.evaluate(_axe_source())
    results = await page.evaluate("(selector) => axe.run({include: [...document.querySelectorAll(selector)].map((node) => [node])})", selector)
    return [(violation["id"], [node["target"] for node in violation["nodes"]]) for violation in results["violations"]
            if violation["impact"] in ("serious", "critical")]


def _stored_predictions(block):
    from learning.models import Prediction

    return [(row.answer_choice, sorted(str(run) for run in (row.run_id, row.run_b_id)), row.measured_choice, row.close)
            for row in Prediction.objects.filter(block=block)]


async def _events(page, name):
    return [event["detail"] for event in await page.evaluate("window.blockEvents") if event["name"] == name]


async def test_a_reader_predicts_runs_and_sees_the_guess_beside_the_measured_value(browser_context, lesson_url):
    page, problems = await _open(browser_context, await lesson_url("four-waits", PREDICT))
    # Storing the prediction fails: the comparison must still show, saying it was not saved.
    await page.route("**/api/predictions/", lambda route: route.fulfill(status=503, body="down"))
    prediction = page.locator("#four-waits")
    assert await page.locator("section.demo .demo-predictions #four-waits").count() == 1, "the question sits above Run"
    guess = prediction.get_by_role("spinbutton", name="Your guess")
    await guess.focus()
    await page.keyboard.type("70")
    await page.keyboard.press("Enter")  # Lock in my guess
    await prediction.get_by_text("Your guess: 70 ms.").wait_for()
    focused = await page.evaluate("document.activeElement.textContent")
    assert "Run" in focused, "focus moves on to Run"
    await page.keyboard.press("Enter")
    result = prediction.locator(".prediction-result")
    await result.wait_for(timeout=20_000)
    text = await result.inner_text()
    measured = float(re.search(r"Measured\s+([\d.,]+) ms", text, re.I).group(1).replace(",", ""))
    assert 55 <= measured < 140, text
    assert re.search(r"Your guess\s+70 ms", text, re.I)
    assert "Close: within 100% of the measurement." in text
    assert "The waits overlap, so the run takes about one wait." in text
    await prediction.get_by_text(re.compile("^Not saved")).wait_for()
    status = await prediction.locator(".prediction-status").inner_text()
    assert "Measured:" in status and "Close" in status, "the live region announces the comparison"
    [finished] = await _events(page, "demo-finished")
    [predicted] = await _events(page, "prediction")
    assert finished["block"] == "demo-1" and finished["status"] == "succeeded" and len(finished["runs"]) == 1
    assert predicted == {"block": "four-waits", "answer": 70, "skipped": False, "close": True, "runs": finished["runs"]}
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        assert await _serious_axe_findings(page, ".prediction") == [], scheme
    assert problems == []
    await page.close()


async def test_a_compare_prediction_is_checked_against_both_sides(browser_context, lesson_url):
    page, problems = await _open(browser_context, await lesson_url("which-first", COMPARE))
    prediction = page.locator("#which-first")
    await prediction.get_by_role("radio", name="B, all four at once").check()
    await prediction.get_by_role("button", name="Lock in my guess").click()
    await page.locator("section.demo").get_by_role("button", name="Run both").click()
    result = prediction.locator(".prediction-result")
    await result.wait_for(timeout=30_000)
    text = await result.inner_text()
    assert re.search(r"Measured, run A\s+[\d.,]+ ms", text, re.I) and re.search(r"Measured, run B\s+[\d.,]+ ms", text, re.I)
    assert re.search(r"Measured outcome\s+“B, all four at once”", text, re.I)
    assert "Right: that is what the run measured." in text
    [predicted] = await _events(page, "prediction")
    assert predicted["answer"] == "B" and predicted["close"] is True and len(predicted["runs"]) == 2
    # Stored through the real POST /api/predictions/: the server checked the guess against both run records.
    await prediction.locator(".prediction-saved").get_by_text(re.compile(r"^Saved")).wait_for()
    stored = await sync_to_async(_stored_predictions)("which-first")
    assert stored == [("B", sorted(predicted["runs"]), "B", True)]
    assert problems == []
    await page.close()


async def test_a_check_question_answered_wrong_then_right(browser_context, lesson_url):
    page, problems = await _open(browser_context, await lesson_url("one-thread", QUIZ))
    quiz = page.locator("#one-thread")
    assert await quiz.locator("details").count() == 1, "the full answer stays behind a disclosure"
    await quiz.get_by_role("radio", name="They keep running on other threads.").check()
    await quiz.get_by_role("button", name="Check").click()
    feedback = quiz.locator(".quiz-feedback")
    await feedback.get_by_text("Not quite.").wait_for()
    assert "every task of a loop shares the loop's one thread" in await feedback.inner_text()
    # Keyboard: arrow to the other choice, then check with Enter.
    await quiz.get_by_role("radio", name="They keep running on other threads.").focus()
    await page.keyboard.press("ArrowDown")
    await page.keyboard.press("Enter")
    await feedback.get_by_text("Right.").wait_for()
    assert "the call holds the thread" in await feedback.inner_text()
    assert await _events(page, "quiz-answered") == [{"block": "one-thread", "correct": False}, {"block": "one-thread", "correct": True}]
    for scheme in ("light", "dark"):
        await page.emulate_media(color_scheme=scheme)
        assert await _serious_axe_findings(page, ".quiz") == [], scheme
    assert problems == []
    await page.close()


async def test_without_javascript_predictions_and_quizzes_still_read(browser_context, lesson_url):
    url = await lesson_url("no-script", PREDICT + "\n" + QUIZ)
    context = await browser_context.browser.new_context(java_script_enabled=False)
    try:
        page = await context.new_page()
        await page.goto(url)
        prediction = await page.locator("#four-waits").inner_text()
        assert "How long does the whole run take?" in prediction
        assert "Run the demo to check your guess (needs JavaScript)." in prediction
        quiz = page.locator("#one-thread")
        assert await quiz.locator("li.quiz-choice").count() == 2
        assert not await quiz.get_by_text("the call holds the thread").is_visible()
        await quiz.locator("summary").click()
        assert await quiz.get_by_text("the call holds the thread").is_visible()
    finally:
        await context.close()
