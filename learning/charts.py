"""Server-drawn SVG charts for the prediction statistics page (no script, so the admin page needs none).

Each chart carries a <title> and a <desc> that say in words what it shows; the page puts a
table of the same numbers beside it, so nothing is known only from the picture. Colours come
from classes in static/css/learning/stats.css (the site's policy allows no inline styles).
"""
from __future__ import annotations

import statistics
from collections.abc import Sequence

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from learning.stats import Bin, ChoiceCount

WIDTH, HEIGHT = 640, 260
LEFT, RIGHT, TOP, BOTTOM = 48, 16, 16, 56


def number_text(value: float) -> str:
    """A compact number for an axis label: 1,250 or 0.35."""
    return f"{value:,.0f}" if abs(value) >= 100 else f"{value:.3g}"


def _frame(title: str, desc: str, ident: str, body: list[str]) -> SafeString:
    return mark_safe(
        f'<svg class="prediction-chart" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{ident}-title {ident}-desc" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="{ident}-title">{escape(title)}</title><desc id="{ident}-desc">{escape(desc)}</desc>'
        + "".join(body) + "</svg>"
    )


def _y_axis(top_count: int) -> tuple[list[str], float]:
    plot_height = HEIGHT - TOP - BOTTOM
    scale = plot_height / max(1, top_count)
    parts = [f'<line class="axis" x1="{LEFT}" y1="{HEIGHT - BOTTOM}" x2="{WIDTH - RIGHT}" y2="{HEIGHT - BOTTOM}"/>',
             f'<text class="tick" x="{LEFT - 6}" y="{HEIGHT - BOTTOM}" text-anchor="end">0</text>',
             f'<text class="tick" x="{LEFT - 6}" y="{TOP + 10}" text-anchor="end">{top_count}</text>']
    return parts, scale


def histogram_svg(bins: Sequence[Bin], measured: Sequence[float], *, unit: str, ident: str) -> SafeString:
    """Bars of guesses per bin; each measured value a mark under the axis, their median a dashed line."""
    guesses = sum(b.guesses for b in bins)
    desc = (f"{guesses} guesses in {len(bins)} bins from {number_text(bins[0].low)} to {number_text(bins[-1].high)} {unit}; "
            f"{len(measured)} measured values marked" if bins else "No guesses yet.")
    if measured:
        desc += f", their median {number_text(statistics.median(measured))} {unit}."
    if not bins:
        return _frame("Guesses against measured values", desc, ident, [])
    body, scale = _y_axis(max(b.guesses for b in bins))
    low, high = bins[0].low, bins[-1].high
    plot_width = WIDTH - LEFT - RIGHT
    span = (high - low) or 1.0

    def x_of(value: float) -> float:
        return LEFT + (value - low) / span * plot_width if high > low else LEFT + plot_width / 2

    bar_width = plot_width / len(bins)
    for index, b in enumerate(bins):
        height = b.guesses * scale
        x = LEFT + index * bar_width
        body.append(f'<rect class="bar-guess" x="{x + 1:.1f}" y="{HEIGHT - BOTTOM - height:.1f}" '
                    f'width="{max(1.0, bar_width - 2):.1f}" height="{height:.1f}"/>')
    for value in measured:
        x = x_of(value)
        body.append(f'<line class="mark-measured" x1="{x:.1f}" y1="{HEIGHT - BOTTOM + 4}" '
                    f'x2="{x:.1f}" y2="{HEIGHT - BOTTOM + 14}"/>')
    if measured:
        x = x_of(statistics.median(measured))
        body.append(f'<line class="median-measured" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}"/>')
    body.append(f'<text class="tick" x="{LEFT}" y="{HEIGHT - BOTTOM + 30}">{escape(number_text(low))} {escape(unit)}</text>')
    body.append(f'<text class="tick" x="{WIDTH - RIGHT}" y="{HEIGHT - BOTTOM + 30}" text-anchor="end">'
                f'{escape(number_text(high))} {escape(unit)}</text>')
    body.append(f'<text class="legend" x="{LEFT}" y="{HEIGHT - 8}">Bars: guesses per bin. Ticks under the axis: '
                f'measured values; dashed line: their median.</text>')
    return _frame("Guesses against measured values", desc, ident, body)


def choices_svg(choices: Sequence[ChoiceCount], *, ident: str) -> SafeString:
    """Two bars per choice: how many readers guessed it, and how many runs came out that way."""
    desc = "; ".join(f"{c.label}: guessed {c.guesses}, measured {c.measured}" for c in choices) or "No guesses yet."
    if not choices:
        return _frame("Guessed against measured choices", desc, ident, [])
    body, scale = _y_axis(max(max(c.guesses, c.measured) for c in choices))
    group_width = (WIDTH - LEFT - RIGHT) / len(choices)
    bar_width = min(48.0, group_width / 2 - 6)
    for index, choice in enumerate(choices):
        centre = LEFT + (index + 0.5) * group_width
        for offset, count, css in ((-bar_width - 2, choice.guesses, "bar-guess"), (2, choice.measured, "bar-measured")):
            height = count * scale
            body.append(f'<rect class="{css}" x="{centre + offset:.1f}" y="{HEIGHT - BOTTOM - height:.1f}" '
                        f'width="{bar_width:.1f}" height="{height:.1f}"/>')
        label = choice.label if len(choice.label) <= 28 else choice.label[:27] + "…"
        body.append(f'<text class="tick" x="{centre:.1f}" y="{HEIGHT - BOTTOM + 18}" text-anchor="middle">{escape(label)}</text>')
    body.append(f'<text class="legend" x="{LEFT}" y="{HEIGHT - 8}">Left bar: readers who guessed it; '
                f'right bar: runs that measured it.</text>')
    return _frame("Guessed against measured choices", desc, ident, body)
