"""How a reader's guess is checked against a run: pure functions, no Django, no database.

A prediction block (the dicts `Lesson.blocks` holds, see the issue 16 contract) names a summary `key`
and what is measured from it:

- `value` (one run): the summary's value of `key`; a number for `answer: number`, the choice
  key it equals for `answer: choice` (booleans as "true"/"false", as JSON writes them);
- `faster` (a compare run, choice): the side whose value of `key` is smaller, "A" or "B", or
  "same" when the two differ by at most 10 % of the larger one;
- `ratio` (a compare run, number): the larger value divided by the smaller.

A number guess is close when it lies within the block's tolerance of the measured value
(absolute, or relative to the measured value); without a tolerance only an exact guess is.
A choice guess is close when it is the measured choice. When the run's summary has no usable
value for `key` (a run that failed before it measured anything), nothing is measured and
closeness is unknown (None): the guess is kept, but counts neither way.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Two compared sides count as "about the same" when they differ by at most this share of the larger.
SAME_WITHIN = 0.10


@dataclass(frozen=True)
class Checked:
    """What the runs measured for a block (a number, a choice key or None) and whether the guess was close."""

    measured: float | str | None
    close: bool | None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def choice_key(value: Any) -> str | None:
    """The choice key a summary value stands for: booleans as "true"/"false", integers and strings as written."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    return None


def measure(block: Mapping[str, Any], summaries: Sequence[Mapping[str, Any]]) -> float | str | None:
    """The measured value for `block` from the run summaries (one, or side A then side B)."""
    key = block["key"]
    kind = block.get("measure") or "value"
    if kind == "value":
        raw = summaries[0].get(key)
        return _number(raw) if block["answer"] == "number" else choice_key(raw)
    side_a, side_b = (_number(summary.get(key)) for summary in summaries[:2])
    if side_a is None or side_b is None:
        return None
    larger, smaller = max(side_a, side_b), min(side_a, side_b)
    if kind == "faster":
        if larger - smaller <= SAME_WITHIN * abs(larger):
            return "same"
        return "A" if side_a < side_b else "B"
    if kind == "ratio":
        return larger / smaller if smaller > 0 else None
    raise ValueError(f"unknown measure {kind!r}")


def within_tolerance(guess: float, measured: float, tolerance: Mapping[str, float] | None) -> bool:
    """True when `guess` is within the tolerance of `measured` (exactly equal when there is none)."""
    if not tolerance:
        return guess == measured
    if "absolute" in tolerance:
        return abs(guess - measured) <= tolerance["absolute"]
    return abs(guess - measured) <= tolerance["relative"] * abs(measured)


def check_prediction(block: Mapping[str, Any], summaries: Sequence[Mapping[str, Any]], answer: float | str | None) -> Checked:
    """Measure `block` on the runs and judge `answer` (None = skipped, judged neither way)."""
    measured = measure(block, summaries)
    if answer is None or measured is None:
        return Checked(measured, None)
    if isinstance(measured, float):
        close = isinstance(answer, (int, float)) and within_tolerance(float(answer), measured, block.get("tolerance"))
        return Checked(measured, close)
    return Checked(measured, answer == measured)
