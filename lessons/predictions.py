"""`prediction` blocks: a question asked before a demo runs, checked against the run's own summary.

A prediction sits right after the demo block it asks about. It names a
summary key the demo declares (`summary_fields`); after a compare block it
asks which side is faster (`measure: faster`) or by how much (`measure:
ratio`). Parsing checks all of that against the demo, so an author learns of a
key the demo never reports when saving, not from a reader.

`measured_value` and `is_close` are the checking rule, the same as
static/js/lessons/closeness.js: the browser shows the comparison at once, the
server recomputes it from the stored runs.
"""
from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from typing import Any

from demos.embedding import EmbeddedDemo
from lessons.blocks import BlockBody, BlockErrors, check_fields, parse_block_id, parse_number, parse_tolerance

FIELDS = {"id", "question", "answer", "key", "unit", "tolerance", "range", "explain", "choices", "measure"}
REQUIRED = {"question", "answer", "key", "explain"}
# `measure: faster` calls the sides "about the same" when they are within this share of the larger value.
SAME_WITHIN = 0.10
FASTER_CHOICES = {"A", "B", "same"}


def parse_prediction(body: BlockBody, *, line: int, default_id: str, demo: EmbeddedDemo | None, demo_index: int,
                     section_id: str, errors: BlockErrors) -> dict[str, Any]:
    """The stored dict of one prediction block; every problem found goes to `errors`.

    `demo` is the demo block it follows (None when that block was itself
    wrong: its own error is reported, and the checks against it are skipped).
    """
    fields = body.fields
    check_fields(body, kind="prediction", allowed=FIELDS, required=REQUIRED, line=line, errors=errors)

    def value(name: str) -> str:
        return fields[name].value if name in fields else ""

    def line_of(name: str) -> int:
        return fields[name].line if name in fields else line

    compare = demo.compare if demo is not None else False
    answer = value("answer")
    if answer and answer not in ("number", "choice"):
        errors.add(line_of("answer"), f"`answer:` is `number` or `choice`, not {answer!r}")
    measure = value("measure") or ("value" if not compare else "faster" if answer == "choice" else "ratio")
    if measure not in ("value", "faster", "ratio"):
        errors.add(line_of("measure"), f"`measure:` is `value`, `faster` or `ratio`, not {measure!r}")
    elif demo is not None and compare and measure == "value":
        errors.add(line_of("measure"), "after a compare demo block (two configurations), `measure:` is `faster` "
                                       "(which side's value is smaller) or `ratio` (larger / smaller)")
    elif demo is not None and not compare and measure != "value":
        errors.add(line_of("measure"), f"`measure: {measure}` compares two runs, but the demo block before this "
                                       "one has one configuration (add a `---` and a second one)")
    elif measure == "faster" and answer == "number":
        errors.add(line_of("answer"), "`measure: faster` asks for a side: `answer: choice` with choices A, B (and same)")
    elif measure == "ratio" and answer == "choice":
        errors.add(line_of("answer"), "`measure: ratio` asks for a number: `answer: number`")

    key = value("key")
    declared: dict[str, tuple[str, str]] = getattr(demo.demo, "summary_fields", {}) if demo and demo.demo else {}
    if demo is not None and key and key not in declared:
        have = ", ".join(sorted(declared)) or "none"
        errors.add(line_of("key"), f"{demo.slug} reports no summary key {key!r} in its `summary_fields` (it declares: {have})")
    declared_unit = declared.get(key, ("", ""))[1]

    unit = value("unit")
    if measure == "ratio":
        if unit not in ("", "x", "×"):
            errors.add(line_of("unit"), f"a ratio is a plain factor (unit `x`), not {unit!r}")
        unit = "x"
    elif answer == "number" and unit and declared_unit and unit != declared_unit:
        errors.add(line_of("unit"), f"{key} is measured in {declared_unit!r}, so the guess is too: write "
                                    f"`unit: {declared_unit}` or leave the unit out")
    unit = unit or declared_unit

    tolerance = None
    value_range = None
    choices = None
    if answer == "number":
        if "choices" in fields:
            errors.add(line_of("choices"), "`choices:` belong to `answer: choice`")
        if "tolerance" in fields:
            tolerance = parse_tolerance(value("tolerance"))
            if tolerance is None:
                errors.add(line_of("tolerance"), f"`tolerance:` is a number (`50`, in the answer's unit) or a "
                                                 f"percentage (`25%`), not {value('tolerance')!r}")
        else:
            errors.add(line, "a number prediction needs `tolerance:` (`50` in its unit, or `25%`): "
                             "a measured value never equals a guess exactly")
        if "range" in fields:
            value_range = _parse_range(value("range"))
            if value_range is None:
                errors.add(line_of("range"), f"`range:` reads `LOW..HIGH` with LOW below HIGH, not {value('range')!r}")
    elif answer == "choice":
        for name in ("tolerance", "range"):
            if name in fields:
                errors.add(line_of(name), f"`{name}:` belongs to `answer: number`")
        if "choices" not in fields:
            errors.add(line, "a choice prediction needs `choices: KEY = label | KEY = label`")
        else:
            choices = _parse_choices(value("choices"), line=line_of("choices"), errors=errors)
            if choices is not None and measure == "faster":
                keys = {choice["key"] for choice in choices}
                if not keys <= FASTER_CHOICES or not {"A", "B"} <= keys:
                    errors.add(line_of("choices"), "with `measure: faster` the choices are `A = ... | B = ...`, "
                                                   "optionally `| same = ...` (within 10% of each other)")

    return {
        "id": parse_block_id(fields.get("id"), default=default_id, errors=errors),
        "kind": "prediction",
        "line": line,
        "demo": demo.slug if demo is not None else "",
        "demo_block": demo_index,
        "demo_section": section_id,
        "compare": compare,
        "question": value("question"),
        "answer": answer,
        "key": key,
        "measure": measure,
        "unit": unit,
        "tolerance": tolerance,
        "range": value_range,
        "choices": choices,
        "explain": value("explain"),
    }


def _parse_range(text: str) -> list[float] | None:
    low_text, sep, high_text = text.partition("..")
    low, high = parse_number(low_text), parse_number(high_text)
    if not sep or low is None or high is None or low >= high:
        return None
    return [low, high]


def _parse_choices(text: str, *, line: int, errors: BlockErrors) -> list[dict[str, str]] | None:
    choices = []
    for part in text.split("|"):
        key, sep, label = part.partition("=")
        key, label = key.strip(), label.strip()
        if not sep or not key or not label:
            errors.add(line, f"each choice reads `KEY = label`, not {part.strip()!r}")
            return None
        choices.append({"key": key, "label": label})
    keys = [choice["key"] for choice in choices]
    if len(choices) < 2:
        errors.add(line, "a choice prediction offers at least two choices, separated by `|`")
        return None
    if len(set(keys)) != len(keys):
        errors.add(line, "two choices have the same key")
        return None
    return choices


def render_prediction(block: dict[str, Any], *, inline: Callable[[str], str]) -> str:
    """The prediction's HTML: its question, a note for readers without JavaScript, the explanation behind a disclosure.

    `inline` renders an author's inline Markdown (code spans, emphasis).
    """
    data = html.escape(json.dumps(block), quote=True)
    return (
        f'<div class="prediction" id="{html.escape(block["id"])}" data-prediction="{data}">'
        f'<p class="prediction-eyebrow">Predict first</p>'
        f'<p class="prediction-question">{inline(block["question"])}</p>'
        f'<p class="prediction-fallback">Run the demo to check your guess (needs JavaScript).</p>'
        f'<details class="prediction-explain"><summary>Explanation</summary><p>{inline(block["explain"])}</p></details>'
        f"</div>\n"
    )


def _choice_key(value: Any) -> str | None:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))  # as JavaScript writes it: 3.0 is "3"
    if isinstance(value, (int, float, str)):
        return str(value)
    return None


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def measured_value(block: dict[str, Any], summaries: Sequence[dict[str, Any]]) -> float | str | None:
    """What the run(s) measured for this prediction: a number, a choice key, or None when it cannot be said.

    `summaries` are the runs' summaries (two for a compare, side A first).
    """
    key, measure = block["key"], block["measure"]
    if measure == "value":
        if len(summaries) != 1:
            return None
        found = summaries[0].get(key)
        return _number(found) if block["answer"] == "number" else _choice_key(found)
    if len(summaries) != 2:
        return None
    side_a, side_b = _number(summaries[0].get(key)), _number(summaries[1].get(key))
    if side_a is None or side_b is None:
        return None
    if measure == "ratio":
        smaller, larger = sorted((side_a, side_b))
        return larger / smaller if smaller > 0 else None
    offered = {choice["key"] for choice in block["choices"] or ()}
    if "same" in offered and abs(side_a - side_b) <= SAME_WITHIN * max(abs(side_a), abs(side_b)):
        return "same"
    return "A" if side_a < side_b else "B" if side_b < side_a else "same"


def is_close(block: dict[str, Any], answer: Any, measured: float | str | None) -> bool | None:
    """Whether a guess was close to what was measured; None when skipped or not measurable."""
    if answer is None or measured is None:
        return None
    if block["answer"] == "choice":
        return str(answer) == measured
    guess = _number(answer)
    if guess is None or isinstance(measured, str):
        return None
    tolerance = block["tolerance"] or {"absolute": 0.0}
    allowed = tolerance.get("absolute", 0.0) + tolerance.get("relative", 0.0) * abs(measured)
    return abs(guess - measured) <= allowed
