"""The scaling curve: more and more arriving readers against one Daphne, and an SVG of what happened.

Each point is one load of the viewer client (bench/viewers.py): N readers
arriving over one second, each running a small `one-cook`. For each point:
how many finished, were refused (`busy` with `retry_after_s`) or failed, the
admitted readers' event delay p50/p99, and Daphne's CPU time (user + system,
from /proc) divided by the readers. The chart is plain SVG, no script.
"""
from __future__ import annotations

import math
import time

import psutil

from bench import demos, viewers

DELAY_TARGET_MS = 250


def _daphne_cpu_s(site) -> tuple[int, float]:
    pid = site.pids["daphne"]
    times = psutil.Process(pid).cpu_times()
    return pid, times.user + times.system


def measure_point(site, *, readers: int, params: dict) -> dict:
    """One load of `readers` arriving readers, with Daphne's CPU over it."""
    demos.wait_until_settled(site)
    pid, cpu_before = _daphne_cpu_s(site)
    row = viewers.measure(site, viewers=readers, params=params)
    row.pop("sampled_during_load", None)
    time.sleep(0.5)  # the last sockets' closing handshakes belong to this load
    try:
        pid_after, cpu_after = _daphne_cpu_s(site)
    except psutil.NoSuchProcess:
        pid_after, cpu_after = -1, cpu_before
    row["daphne_restarted"] = pid_after != pid
    row["daphne_cpu_s"] = None if row["daphne_restarted"] else round(cpu_after - cpu_before, 2)
    row["daphne_cpu_ms_per_reader"] = (None if row["daphne_cpu_s"] is None
                                       else round(1000 * row["daphne_cpu_s"] / max(readers, 1), 2))
    return row


def measure(site, *, points: list[int], params: dict, log=lambda text: None) -> list[dict]:
    rows = []
    for readers in points:
        log(f"scaling curve: {readers} readers")
        rows.append(measure_point(site, readers=readers, params=params))
    return rows


def knee(rows: list[dict]) -> tuple[dict | None, dict | None]:
    """The largest load served whole within the delay target, and the first one after it that was not."""
    last_good = first_bad = None
    for row in rows:
        whole = row["finished"] == row["viewers"] and row["failed"] == 0 and row["gaps"] == 0
        p99 = viewers.observed_p99_ms(row)
        within = p99 is not None and p99 <= DELAY_TARGET_MS
        if whole and within and first_bad is None:
            last_good = row
        elif first_bad is None:
            first_bad = row
    return last_good, first_bad


# --- the chart -------------------------------------------------------------------------------------

WIDTH, PANEL_H, LEFT, RIGHT, TOP, GAP = 720, 170, 70, 150, 62, 60
COLOURS = {"finished": "#2f7d32", "refused": "#c77700", "failed": "#b3261e", "p50": "#1f5fa8", "p99": "#6a1b9a",
           "all p99": "#8d6e63", "cpu": "#37474f", "target": "#b3261e"}


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def svg(rows: list[dict]) -> str:
    """Three panels sharing a logarithmic readers axis: outcomes, delay, Daphne CPU per reader."""
    xs = [row["viewers"] for row in rows]
    lo, hi = math.log10(min(xs)), math.log10(max(xs))
    span = (hi - lo) or 1.0
    plot_w = WIDTH - LEFT - RIGHT

    def x(readers: float) -> float:
        return LEFT + (math.log10(readers) - lo) / span * plot_w

    height = TOP + 3 * PANEL_H + 2 * GAP + 50
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" '
           'font-family="sans-serif" font-size="12" role="img" aria-labelledby="title desc">',
           '<title id="title">One Daphne: arriving readers against outcome, event delay and CPU per reader</title>',
           '<desc id="desc">' + _escape("; ".join(
               f"{r['viewers']} readers: {r['finished']} finished, {r['refused']} refused, {r['failed']} failed, "
               f"observer's delay p50 {r['observer']['delay_p50_ms']} ms p99 {viewers.observed_p99_ms(r)} ms "
               f"(every reader's p99 {r['delay_p99_ms']} ms), "
               f"CPU {r['daphne_cpu_ms_per_reader']} ms per reader" for r in rows)) + '</desc>',
           f'<rect width="{WIDTH}" height="{height}" fill="#ffffff"/>',
           f'<text x="{LEFT}" y="22" font-size="15" font-weight="bold">One Daphne, readers arriving over one second</text>']

    def panel(index: int, title: str, series: list[tuple[str, str, list[float | None]]], y_max: float,
              unit: str, target: float | None = None) -> None:
        top = TOP + index * (PANEL_H + GAP)
        bottom = top + PANEL_H
        y_max = y_max or 1.0

        def y(value: float) -> float:
            return bottom - min(value, y_max) / y_max * PANEL_H

        out.append(f'<text x="{LEFT}" y="{top - 8}" font-weight="bold">{_escape(title)}</text>')
        out.append(f'<rect x="{LEFT}" y="{top}" width="{plot_w}" height="{PANEL_H}" fill="none" stroke="#999"/>')
        for step in range(5):
            value = y_max * step / 4
            out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#eee"/>')
            out.append(f'<text x="{LEFT - 6}" y="{y(value) + 4:.1f}" text-anchor="end">{value:g}{unit}</text>')
        if target is not None and target <= y_max:
            out.append(f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(target):.1f}" y2="{y(target):.1f}" '
                       f'stroke="{COLOURS["target"]}" stroke-dasharray="6 4"/>')
            out.append(f'<text x="{LEFT + plot_w + 6}" y="{y(target) + 4:.1f}" fill="{COLOURS["target"]}">'
                       f'target {target:g}{unit}</text>')
        for number, (name, colour, values) in enumerate(series):
            points = [(x(r), y(v)) for r, v in zip(xs, values, strict=True) if v is not None]
            if len(points) > 1:
                out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="'
                           + " ".join(f"{px:.1f},{py:.1f}" for px, py in points) + '"/>')
            for px, py in points:
                out.append(f'<circle cx="{px:.1f}" cy="{py:.1f}" r="3.5" fill="{colour}"/>')
            out.append(f'<text x="{LEFT + plot_w + 6}" y="{top + 14 + 16 * number}" fill="{colour}">{_escape(name)}</text>')
        for readers in xs:
            out.append(f'<line x1="{x(readers):.1f}" x2="{x(readers):.1f}" y1="{bottom}" y2="{bottom + 4}" stroke="#999"/>')
            out.append(f'<text x="{x(readers):.1f}" y="{bottom + 16}" text-anchor="middle">{readers:,}</text>')

    share = [(key, COLOURS[key], [100 * r[key] / max(r["viewers"], 1) for r in rows])
             for key in ("finished", "refused", "failed")]
    panel(0, "Readers: finished, refused (busy + retry_after_s), failed", share, 100, "%")
    delays = [("observer p50", COLOURS["p50"], [r["observer"]["delay_p50_ms"] for r in rows]),
              ("observer p99", COLOURS["p99"], [viewers.observed_p99_ms(r) for r in rows]),
              ("all readers p99", COLOURS["all p99"], [r["delay_p99_ms"] for r in rows])]
    worst = max((v for _, _, values in delays for v in values if v is not None), default=DELAY_TARGET_MS)
    panel(1, "Event delay of admitted readers: the observer's, and every reader's p99 (ms, clipped at 4x)", delays,
          _nice(min(max(worst, DELAY_TARGET_MS * 1.2), 4 * DELAY_TARGET_MS)), " ms", DELAY_TARGET_MS)
    cpu = [("CPU ms / reader", COLOURS["cpu"], [r["daphne_cpu_ms_per_reader"] for r in rows])]
    panel(2, "Daphne CPU time per arriving reader (ms)", cpu,
          _nice(max((v for v in cpu[0][2] if v is not None), default=1.0) * 1.2), "")
    out.append(f'<text x="{LEFT + plot_w / 2:.1f}" y="{height - 12}" text-anchor="middle">arriving readers (log scale)</text>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _nice(value: float) -> float:
    """A round axis maximum at or above `value`."""
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def render(rows: list[dict], *, svg_path: str, target_points: tuple[int, ...] = (5000, 10000)) -> list[str]:
    lines = ["", "## 2a. Scaling: arriving readers against one Daphne", "",
             f"![Readers against outcome, delay and Daphne CPU per reader]({svg_path})", "",
             "Each load on the same site, one after another once the previous one's runs had ended. The bench site "
             "allows its one client 60 s to send request headers (the site's own default is 5 s; see SITE_ENV in "
             "bench/__main__.py); every other limit is the site's default, the per-process admission included. "
             f"Of each load's readers, {viewers.OBSERVER_READERS} (at most half) come from the observer, a second client process "
             "with few sockets whose own loop is never late: the p99 target is judged on its delays. \"all\" is "
             "every admitted reader's, as the load client read them, its own lateness included.", "",
             "| readers | finished | refused (busy) | failed | gaps | delay p50 / p99 ms: observer (all) "
             "| handshake p50 / p99 ms | Daphne CPU s | CPU ms / reader | client CPU s "
             "| load client's own lag p99 / max ms | observer: finished, own lag max ms | took s |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        cpu = "restarted by the liveness probe" if r["daphne_restarted"] else r["daphne_cpu_s"]
        lines.append(f"| {r['viewers']:,} | {r['finished']} | {r['refused']} | {r['failed']} | {r['gaps']} "
                     f"| {viewers.describe_delays(r)} | {r['handshake_p50_ms']} / {r['handshake_p99_ms']} "
                     f"| {cpu} | {r['daphne_cpu_ms_per_reader'] if r['daphne_cpu_ms_per_reader'] is not None else '—'} "
                     f"| {r['client_cpu_s']} | {r.get('client_lag_p99_ms')} / {r.get('client_lag_max_ms')} "
                     f"| {r['observer']['finished']} of {r['observer']['readers']}, {r['observer']['lag_max_ms']} "
                     f"| {r['elapsed_s']} |")
    good, bad = knee(rows)
    lines.append("")
    if good is not None and bad is not None:
        lines.append(f"- The knee: every reader up to **{good['viewers']:,}** finished within the p99 target; at "
                     f"**{bad['viewers']:,}** {bad['refused']} were refused, {bad['failed']} failed, observer's p99 "
                     f"{viewers.observed_p99_ms(bad)} ms. Daphne used {bad['daphne_cpu_s']} s of CPU over a load of "
                     f"{bad['elapsed_s']} s there: one process holds one core at most.")
    elif good is not None:
        lines.append(f"- Every load up to {good['viewers']:,} readers finished whole within the p99 target: no knee "
                     "in this range.")
    else:
        lines.append("- No load of this run finished whole within the p99 target.")
    failures = [f"{r['viewers']:,}: {r['failures']}" for r in rows if r["failures"]]
    if failures:
        lines.append(f"- First failures per load: {'; '.join(failures)}")
    for point in target_points:
        row = next((r for r in rows if r["viewers"] == point), None)
        if row is None:
            continue
        clean = row["failed"] == 0 and row["finished"] + row["refused"] == row["viewers"]
        p99 = viewers.observed_p99_ms(row)
        within = p99 is not None and p99 <= DELAY_TARGET_MS
        met = clean and within and not row["daphne_restarted"]
        lines.append(f"- {point:,} readers: every reader streamed or told `busy` (retry_after_s "
                     f"{row['retry_after_s'][:1] + row['retry_after_s'][-1:]}), 0 transport failures, admitted p99 "
                     f"≤ {DELAY_TARGET_MS} ms: " + ("**met**" if met else "**missed**")
                     + f" ({row['finished']} finished, {row['refused']} refused, {row['failed']} failed, "
                     f"observer's p99 {p99} ms, every reader's {row['delay_p99_ms']} ms)")
    return lines


def main(argv: list[str]) -> None:
    """`python -m bench.scaling 2000,2000 [SETTING=value ...]`: loads on one fresh bench site, a JSON row each.

    The site is started as `make bench` starts it (bench/__main__.py SITE_ENV), with any setting given
    overriding it: how the admission settings were chosen (docs/adr/0022-a-line-at-the-door-before-busy.md).
    """
    import json
    import tempfile
    from pathlib import Path

    from bench.__main__ import FULL, SITE_ENV
    from bench.site import start_site

    points = [int(count) for count in argv[0].split(",")]
    env = {**SITE_ENV, **dict(setting.split("=", 1) for setting in argv[1:])}
    site = start_site(Path(tempfile.mkdtemp(prefix="bench-scaling-")) / "var", extra_env=env)
    try:
        params = dict(FULL["viewer_params"])  # type: ignore[call-overload]  # FULL mixes value types
        for readers in points:
            row = measure_point(site, readers=readers, params=params)
            print(json.dumps({key: row[key] for key in (
                "viewers", "finished", "refused", "failed", "gaps", "delay_p50_ms",
                "delay_p99_ms", "handshake_p50_ms", "handshake_p99_ms", "elapsed_s", "daphne_cpu_s", "client_cpu_s",
                "client_lag_p99_ms", "client_lag_max_ms", "observer", "failures")}),
                flush=True)
    finally:
        site.stop()


if __name__ == "__main__":
    import sys

    main(sys.argv[1:])
