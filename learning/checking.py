"""How a reader's guess is checked against stored runs: the lesson blocks' own rule, applied on the server.

The rule (what a block measures, when a guess is close) lives with the block in
lessons.predictions, beside its parser, and static/js/lessons/closeness.js is
its browser twin; this module only packages its answer. When a run's summary
has no usable value for the key (a run that failed before it measured
anything), nothing is measured and closeness is unknown (None): the guess is
kept, but counts neither way.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from lessons.predictions import is_close, measured_value


@dataclass(frozen=True)
class Checked:
    """What the runs measured for a block (a number, a choice key or None) and whether the guess was close."""

    measured: float | str | None
    close: bool | None


def measure(block: Mapping[str, Any], summaries: Sequence[Mapping[str, Any]]) -> float | str | None:
    """The measured value for `block` from the run summaries (one, or side A then side B)."""
    return measured_value(dict(block), [dict(summary) for summary in summaries])


def check_prediction(block: Mapping[str, Any], summaries: Sequence[Mapping[str, Any]], answer: float | str | None) -> Checked:
    """Measure `block` on the runs and judge `answer` (None = skipped, judged neither way)."""
    measured = measure(block, summaries)
    return Checked(measured, is_close(dict(block), answer, measured))
