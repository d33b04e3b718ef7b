"""What readers predicted, block by block, and how each demo's runs went: the figures the admin pages show.

Figures are counts first; a share is given as a percentage only from MIN_FOR_PERCENT
cases up ("2 of 3" says more honestly what three guesses show than "67 %").
"""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.db.models import Aggregate, Count, DurationField, ExpressionWrapper, F, Q

from demos.models import Run
from demos.registry import DEMOS
from learning.models import Prediction

MIN_FOR_PERCENT = 10
# A run the site turned away for want of a slot is recorded cancelled with this summary text
# (demos/supervisor.py, start_run); it never ran, so it counts as a busy refusal, not a run.
BUSY_REFUSAL_TEXT = "Not started: the site was busy."
HISTOGRAM_BINS = 10


def share_text(part: int, whole: int) -> str:
    """ "7 of 12 (58 %)", or "2 of 3" when there are too few for a percentage, or "none yet"."""
    if whole == 0:
        return "none yet"
    if whole < MIN_FOR_PERCENT:
        return f"{part} of {whole}"
    return f"{part} of {whole} ({100 * part / whole:.0f} %)"


@dataclass(frozen=True)
class Bin:
    """One bar of a histogram: [low, high) (the last one closed), guesses and measured values in it."""

    low: float
    high: float
    guesses: int
    measured: int


@dataclass(frozen=True)
class ChoiceCount:
    key: str
    label: str
    guesses: int
    measured: int


@dataclass
class BlockStatistics:
    """Everything the per-block admin page shows."""

    block: dict[str, Any]
    predicted: int = 0
    skipped: int = 0
    judged: int = 0           # guesses for which the runs measured something
    close: int = 0
    measured_values: list[float] = field(default_factory=list)
    guesses: list[float] = field(default_factory=list)
    bins: list[Bin] = field(default_factory=list)
    choices: list[ChoiceCount] = field(default_factory=list)
    most_common_wrong: tuple[str, int] | None = None

    @property
    def close_text(self) -> str:
        return share_text(self.close, self.judged)

    @property
    def skipped_text(self) -> str:
        return share_text(self.skipped, self.predicted + self.skipped)


def histogram(guesses: list[float], measured: list[float], bins: int = HISTOGRAM_BINS) -> list[Bin]:
    """Equal-width bins spanning every guess and measured value; both counted per bin."""
    values = guesses + measured
    if not values:
        return []
    low, high = min(values), max(values)
    if low == high:
        return [Bin(low, high, len(guesses), len(measured))]
    width = (high - low) / bins

    def index(value: float) -> int:
        return min(bins - 1, int(math.floor((value - low) / width)))

    guess_counts = Counter(index(value) for value in guesses)
    measured_counts = Counter(index(value) for value in measured)
    return [Bin(low + i * width, low + (i + 1) * width, guess_counts[i], measured_counts[i]) for i in range(bins)]


def block_statistics(*, lesson_id: int, block: dict[str, Any]) -> BlockStatistics:
    """Counts, distribution, share within tolerance and most common wrong choice for one prediction block."""
    stats = BlockStatistics(block=block)
    rows = Prediction.objects.filter(lesson_id=lesson_id, block=block["id"]).values_list(
        "skipped", "answer_number", "answer_choice", "measured_number", "measured_choice", "close")
    wrong: Counter[str] = Counter()
    guessed_choices: Counter[str] = Counter()
    measured_choices: Counter[str] = Counter()
    for skipped, answer_number, answer_choice, measured_number, measured_choice, close in rows:
        if measured_number is not None:
            stats.measured_values.append(measured_number)
        if measured_choice:
            measured_choices[measured_choice] += 1
        if skipped:
            stats.skipped += 1
            continue
        stats.predicted += 1
        if answer_number is not None:
            stats.guesses.append(answer_number)
        if answer_choice:
            guessed_choices[answer_choice] += 1
        if close is not None:
            stats.judged += 1
            stats.close += close
            if not close and answer_choice:
                wrong[answer_choice] += 1
    if block["answer"] == "number":
        stats.bins = histogram(stats.guesses, stats.measured_values)
    else:
        declared = [(choice["key"], choice["label"]) for choice in block.get("choices") or []]
        others = sorted((set(guessed_choices) | set(measured_choices)) - {key for key, _ in declared})
        stats.choices = [ChoiceCount(key, label, guessed_choices[key], measured_choices[key])
                         for key, label in declared + [(key, key) for key in others]]
        if wrong:
            # Ties go to the choice declared first, so the page does not flip between equals.
            order = {key: i for i, (key, _) in enumerate(declared)}
            top = max(wrong.values())
            stats.most_common_wrong = min(((k, n) for k, n in wrong.items() if n == top), key=lambda kn: order.get(kn[0], 99))
    return stats


def lesson_prediction_counts(*, lesson_id: int) -> dict[str, dict[str, int]]:
    """Per block id of one lesson: how many predicted and how many skipped."""
    counts: dict[str, dict[str, int]] = {}
    for row in (Prediction.objects.filter(lesson_id=lesson_id).values("block")
                .annotate(predicted=Count("id", filter=Q(skipped=False)), skipped=Count("id", filter=Q(skipped=True)))):
        counts[row["block"]] = {"predicted": row["predicted"], "skipped": row["skipped"]}
    return counts


class Median(Aggregate):
    """PostgreSQL's continuous median (percentile_cont(0.5)) of an expression."""

    function = "percentile_cont"
    template = "%(function)s(0.5) WITHIN GROUP (ORDER BY %(expressions)s)"
    output_field = DurationField()


@dataclass(frozen=True)
class DemoFigures:
    """One row of the staff dashboard."""

    demo: str
    title: str
    attempts: int          # every run record, refusals included
    busy: int              # turned away for want of a slot
    finished: int          # started and ended
    failed: int            # failed or timed out
    succeeded: int
    median_duration: timedelta | None
    predictions: int
    judged: int
    close: int

    @property
    def busy_text(self) -> str:
        return share_text(self.busy, self.attempts)

    @property
    def failed_text(self) -> str:
        return share_text(self.failed, self.finished)

    @property
    def accuracy_text(self) -> str:
        return share_text(self.close, self.judged)

    @property
    def median_text(self) -> str:
        if self.median_duration is None:
            return "no succeeded runs"
        milliseconds = self.median_duration.total_seconds() * 1000
        shown = f"{milliseconds / 1000:.2f} s" if milliseconds >= 1000 else f"{milliseconds:.0f} ms"
        return f"{shown} (median of {self.succeeded})"


def demo_dashboard() -> list[DemoFigures]:
    """Per demo (every registered one, and any other the run records name): runs, refusals, failures, durations, accuracy."""
    busy = Q(status=Run.Status.CANCELLED, summary__text=BUSY_REFUSAL_TEXT)
    duration = ExpressionWrapper(F("finished_at") - F("created_at"), output_field=DurationField())
    succeeded = Q(status=Run.Status.SUCCEEDED, finished_at__isnull=False)
    runs = {row["demo"]: row for row in Run.objects.order_by().values("demo").annotate(
        attempts=Count("id"),
        busy=Count("id", filter=busy),
        finished=Count("id", filter=~Q(status=Run.Status.RUNNING) & ~busy),
        failed=Count("id", filter=Q(status__in=[Run.Status.FAILED, Run.Status.TIMED_OUT])),
        succeeded=Count("id", filter=succeeded),
        median=Median(duration, filter=succeeded),
    )}
    predictions = {row["demo"]: row for row in Prediction.objects.order_by().values("demo").annotate(
        total=Count("id", filter=Q(skipped=False)),
        judged=Count("id", filter=Q(close__isnull=False)),
        close=Count("id", filter=Q(close=True)),
    )}
    figures = []
    for slug in sorted(set(DEMOS) | set(runs) | set(predictions)):
        run_row, prediction_row = runs.get(slug, {}), predictions.get(slug, {})
        demo = DEMOS.get(slug)
        figures.append(DemoFigures(
            demo=slug, title=getattr(demo, "title", slug),
            attempts=run_row.get("attempts", 0), busy=run_row.get("busy", 0), finished=run_row.get("finished", 0),
            failed=run_row.get("failed", 0), succeeded=run_row.get("succeeded", 0),
            median_duration=run_row.get("median"),
            predictions=prediction_row.get("total", 0), judged=prediction_row.get("judged", 0),
            close=prediction_row.get("close", 0),
        ))
    return figures
