"""`quiz` blocks: one check question, multiple choice or numeric, with an explanation for every answer.

Multiple choice lists its choices as `- [ ] label :: why` with exactly one
`- [x]`; numeric gives `answer: NUMBER` (optionally `tolerance:` and `unit:`)
and one `explain:`. Without JavaScript a quiz reads as the question, its
choices as a list and the answer inside a `<details>`; the script in
static/js/lessons/quizzes.js turns the same markup into a form.
"""
from __future__ import annotations

import html
import json
import re
from collections.abc import Callable
from typing import Any

from lessons.blocks import BlockBody, BlockErrors, check_fields, parse_block_id, parse_number, parse_tolerance

FIELDS = {"id", "question", "answer", "tolerance", "unit", "explain"}
CHOICE = re.compile(r"^\[( |x|X)\]\s*(.*)$")


def parse_quiz(body: BlockBody, *, line: int, default_id: str, errors: BlockErrors) -> dict[str, Any]:
    """The stored dict of one quiz block; every problem found goes to `errors`."""
    fields = body.fields
    check_fields(body, kind="quiz", allowed=FIELDS, required={"question"}, line=line, errors=errors)

    def value(name: str) -> str:
        return fields[name].value if name in fields else ""

    answer_text = value("answer")
    numeric = bool(answer_text) and answer_text != "choice"
    choices = None
    number = None
    tolerance = None
    if numeric:
        number = parse_number(answer_text)
        if number is None:
            errors.add(fields["answer"].line, f"`answer:` is the right number (`300`), or `choice` for a multiple-choice "
                                              f"question, not {answer_text!r}")
        if body.items:
            errors.add(body.items[0].line, "a quiz is either numeric (`answer: NUMBER`) or multiple choice "
                                           "(`- [ ]` lines), not both")
        if "explain" not in fields:
            errors.add(line, "a numeric quiz needs `explain:`, shown once the reader has answered")
        if "tolerance" in fields:
            tolerance = parse_tolerance(value("tolerance"))
            if tolerance is None:
                errors.add(fields["tolerance"].line, f"`tolerance:` is a number (`20`) or a percentage (`10%`), "
                                                     f"not {value('tolerance')!r}")
    else:
        for name in ("tolerance", "unit"):
            if name in fields:
                errors.add(fields[name].line, f"`{name}:` belongs to a numeric quiz (`answer: NUMBER`)")
        choices = _parse_choices(body, line=line, errors=errors)
    return {
        "id": parse_block_id(fields.get("id"), default=default_id, errors=errors),
        "kind": "quiz",
        "line": line,
        "question": value("question"),
        "answer": "number" if numeric else "choice",
        "choices": choices,
        "number": number,
        "tolerance": tolerance,
        "unit": value("unit"),
        "explain": value("explain"),
    }


def _parse_choices(body: BlockBody, *, line: int, errors: BlockErrors) -> list[dict[str, Any]] | None:
    choices = []
    for index, item in enumerate(body.items):
        match = CHOICE.match(item.text)
        if match is None:
            errors.add(item.line, f"a choice reads `- [ ] label :: why` (or `- [x]` for the right one), not {item.text!r}")
            continue
        label, sep, explain = match.group(2).partition("::")
        if not label.strip():
            errors.add(item.line, "this choice has no text before ` :: `")
        if not sep or not explain.strip():
            errors.add(item.line, "every choice carries its explanation after ` :: ` (why it is right, or why not)")
        choices.append({"key": chr(ord("a") + index) if index < 26 else str(index), "label": label.strip(),
                        "correct": match.group(1) != " ", "explain": explain.strip()})
    if not body.items:
        errors.add(line, "a quiz needs choices (`- [ ] label :: why`, one of them `- [x]`) or `answer: NUMBER`")
        return None
    if len(choices) < 2 and len(choices) == len(body.items):
        errors.add(line, "a multiple-choice quiz offers at least two choices")
    right = sum(1 for choice in choices if choice["correct"])
    if right != 1 and len(choices) == len(body.items):
        errors.add(line, f"exactly one choice is marked `[x]` (the right answer); this quiz has {right}")
    return choices


def _number_text(number: float | None) -> str:
    if number is None:
        return ""
    return str(int(number)) if number.is_integer() and abs(number) < 1e15 else repr(number)


def tolerance_text(tolerance: dict[str, float] | None, unit: str) -> str:
    """`within 10%`, `within 20 ms`, or "" when the answer must be exact."""
    if not tolerance:
        return ""
    if "relative" in tolerance:
        return f"within {_number_text(tolerance['relative'] * 100)}%"
    return f"within {_number_text(tolerance['absolute'])}{' ' + unit if unit else ''}"


def render_quiz(block: dict[str, Any], *, inline: Callable[[str], str]) -> str:
    """The quiz's HTML, complete without JavaScript: question, choices as a list, the answer inside `<details>`."""
    data = html.escape(json.dumps(block), quote=True)
    parts = [
        f'<div class="quiz" id="{html.escape(block["id"])}" data-quiz="{data}">',
        '<p class="quiz-eyebrow">Check question</p>',
        f'<p class="quiz-question">{inline(block["question"])}</p>',
    ]
    if block["answer"] == "choice":
        choices = block["choices"] or []
        parts.append('<ol class="quiz-choices">')
        parts += [f'<li class="quiz-choice" id="{html.escape(block["id"])}-{choice["key"]}">{inline(choice["label"])}</li>'
                  for choice in choices]
        parts.append("</ol>")
        right = next((choice for choice in choices if choice["correct"]), None)
        parts.append('<details class="quiz-answer"><summary>Answer</summary>')
        if right is not None:
            parts.append(f'<p class="quiz-right"><strong>Right answer:</strong> {inline(right["label"])}</p>')
        parts.append('<ul class="quiz-explanations">')
        parts += [f'<li class="quiz-explain" id="{html.escape(block["id"])}-{choice["key"]}-why">'
                  f'<strong>{inline(choice["label"])}</strong> {inline(choice["explain"])}</li>' for choice in choices]
        parts.append("</ul>")
    else:
        unit = block["unit"]
        within = tolerance_text(block["tolerance"], unit)
        parts.append('<p class="quiz-number-hint">Answer with a number'
                     f'{" in " + html.escape(unit) if unit else ""}.</p>')
        parts.append('<details class="quiz-answer"><summary>Answer</summary>')
        parts.append(f'<p class="quiz-right"><strong>Right answer:</strong> {_number_text(block["number"])}'
                     f'{" " + html.escape(unit) if unit else ""}{" (" + within + ")" if within else ""}</p>')
        parts.append(f'<p class="quiz-explain">{inline(block["explain"])}</p>')
    parts.append("</details></div>\n")
    return "".join(parts)
