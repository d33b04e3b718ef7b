"""One web process against two: the same page load and the same readers on `WEB_PROCESSES=1` and `=2`.

Each side is a site started as `make run` starts it, measured with the same
wrk run on the lesson page and the same arriving viewers; the CPU each Daphne
spent on the viewers is read from /proc (psutil) before and after. The load
generators run on the same machine and take cores of their own, so on a
small machine the second process competes with them: the table says how many
cores there were, and nothing here claims a speed-up the figures do not show.
"""
from __future__ import annotations

from pathlib import Path

import psutil

from bench import pages, viewers
from bench.site import RunningSite, start_site


def web_pids(site: RunningSite) -> dict[str, int]:
    """The site's Daphne processes by name (`daphne`, `daphne 2`, ...)."""
    return {name: pid for name, pid in site.pids.items() if name.startswith("daphne")}


def cpu_seconds(pid: int) -> float:
    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def measure_site(site: RunningSite, *, connections: int, seconds: int, viewer_count: int, params: dict) -> dict:
    """The lesson page under wrk, then the viewers, on a site already running."""
    lesson = pages.wrk(site.url + pages.LESSON_PATH, connections=connections, seconds=seconds)
    pids = web_pids(site)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    load = viewers.measure(site, viewers=viewer_count, params=params)
    cpu = {name: round(cpu_seconds(pid) - before[name], 2) for name, pid in pids.items()}
    return {"web_processes": len(pids), "lesson": lesson, "viewers": load, "viewer_cpu_s": cpu}


def measure_two(var_dir: Path, *, site_env: dict[str, str], connections: int, seconds: int, viewer_count: int,
                params: dict) -> dict:
    """A fresh site with two web processes, measured as `measure_site` measures the one-process site."""
    site = start_site(var_dir, extra_env={**site_env, "COURSESITE_VAR_DIR": str(var_dir), "WEB_PROCESSES": "2"})
    try:
        return measure_site(site, connections=connections, seconds=seconds, viewer_count=viewer_count, params=params)
    finally:
        site.stop()


def render(one: dict, two: dict | None, usable_cores: int) -> list[str]:
    """The side-by-side section of docs/benchmarks.md (`two` is None in the smoke run, which starts no second site)."""
    lines = [
        "## 9. One web process or two",
        "",
        f"The same load on `WEB_PROCESSES=1` and `WEB_PROCESSES=2` (sites started one after the other in this run, "
        f"{usable_cores} usable cores, load generators on the same machine): the lesson page under "
        f"`{one['lesson']['command'].split(' http')[0]}`, then {one['viewers']['viewers']} arriving viewers.",
        "",
        "| web processes | lesson req/s | lesson p99 ms | viewers finished | event delay p50 / p99 ms "
        "| Daphne CPU s during the viewers |",
        "|---|---|---|---|---|---|",
    ]
    for side in (one, two) if two is not None else (one,):
        lesson, load = side["lesson"], side["viewers"]
        cpu = ", ".join(f"{name} {seconds}" for name, seconds in side["viewer_cpu_s"].items())
        lines.append(f"| {side['web_processes']} | {lesson['rps']:.0f} | {lesson['p99_ms']:.1f} "
                     f"| {load['finished']} of {load['viewers']} | {load['delay_p50_ms']} / {load['delay_p99_ms']} "
                     f"| {cpu} |")
    if two is None:
        return lines + ["", "- Two processes: the smoke run starts no second site; `make bench` measures it.", ""]
    ratio = two["lesson"]["rps"] / one["lesson"]["rps"] if one["lesson"]["rps"] else None
    if ratio is not None:
        lines += ["", f"- Lesson page throughput, two processes ÷ one: **{ratio:.2f}** (one measurement each)."]
    return lines + [""]
