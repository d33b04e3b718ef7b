"""Naming a tail latency honestly: a percentile only where there are enough samples for one.

A "p99" of 25 samples is the largest of them under another name. Summaries
call `tail(values)`, which gives the nearest-rank percentile once there are
MIN_SAMPLES_FOR_PERCENTILE samples and otherwise the maximum, with a label
that says which ("p99 of 400", "max of 25") so the text cannot claim more
than the run measured.
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_SAMPLES_FOR_PERCENTILE = 100


def percentile(values: Sequence[float], fraction: float) -> float:
    """Nearest-rank percentile (`fraction` in (0, 1]) of a non-empty sequence."""
    if not values:
        raise ValueError("no samples")
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


@dataclass(frozen=True)
class Tail:
    """A tail statistic and the words for it."""

    value: float
    label: str       # "p99 of 400" or "max of 25"
    samples: int
    is_percentile: bool

    def describe(self, unit: str = "ms", digits: int = 0) -> str:
        """E.g. "p99 of 400: 12 ms" or "max of 25: 12 ms"."""
        return f"{self.label}: {self.value:,.{digits}f} {unit}"


def tail(values: Sequence[float], fraction: float = 0.99) -> Tail:
    """The `fraction` percentile of `values` when there are at least 100 of them, else their maximum.

    An empty sequence gives a Tail of 0 labelled "no samples".
    """
    count = len(values)
    if count == 0:
        return Tail(0.0, "no samples", 0, False)
    if count >= MIN_SAMPLES_FOR_PERCENTILE:
        name = f"p{fraction * 100:g}"
        return Tail(percentile(values, fraction), f"{name} of {count:,}", count, True)
    return Tail(max(values), f"max of {count:,}", count, False)


def ratio_text(measured_ms: float, reference_ms: float, reference: str, *, digits: int = 2) -> str | None:
    """"3.10 × the longest wait (200 ms)", or None when the reference is too small for a ratio to mean anything."""
    if reference_ms < 1:
        return None
    return f"{measured_ms / reference_ms:.{digits}f} × {reference} ({reference_ms:,.0f} ms)"
