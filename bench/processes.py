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
from urllib.request import urlopen

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
    """The lesson page under wrk, then the viewers, on a site already running.

    The page is fetched once and loaded for a short warm-up first, not counted, as section 1's pages are
    measured warm: a fresh site's first seconds (its page cache empty, its request threads not yet made)
    cost one process 40% of its throughput in a cold measurement.
    """
    urlopen(site.url + pages.LESSON_PATH, timeout=30).read()
    pages.wrk(site.url + pages.LESSON_PATH, connections=connections, seconds=min(seconds, 3))
    pids = web_pids(site)
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    lesson = pages.wrk(site.url + pages.LESSON_PATH, connections=connections, seconds=seconds)
    lesson_cpu = {name: round(cpu_seconds(pid) - before[name], 2) for name, pid in pids.items()}
    before = {name: cpu_seconds(pid) for name, pid in pids.items()}
    load = viewers.measure(site, viewers=viewer_count, params=params)
    cpu = {name: round(cpu_seconds(pid) - before[name], 2) for name, pid in pids.items()}
    return {"web_processes": len(pids), "lesson": lesson, "lesson_cpu_s": lesson_cpu, "wrk_seconds": seconds,
            "viewers": load,
            "viewer_cpu_s": cpu}


def measure_fresh(var_dir: Path, *, processes: int, site_env: dict[str, str], connections: int, seconds: int,
                  viewer_count: int, params: dict) -> dict:
    """A fresh site with `processes` web processes, measured by `measure_site`.

    Both sides get a site of their own, started for this section: measured on the site the earlier sections
    had loaded (10,000 readers among them), one process came out at a third of two, above the cores.
    """
    site = start_site(var_dir, extra_env={**site_env, "COURSESITE_VAR_DIR": str(var_dir),
                                          "WEB_PROCESSES": str(processes)})
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
        "| web processes | lesson req/s | lesson p99 ms | Daphne CPU s during wrk | viewers finished "
        "| event delay p50 / p99 ms: observer (all) | Daphne CPU s during the viewers |",
        "|---|---|---|---|---|---|---|",
    ]
    for side in (one, two) if two is not None else (one,):
        lesson, load = side["lesson"], side["viewers"]
        cpu = ", ".join(f"{name} {seconds}" for name, seconds in side["viewer_cpu_s"].items())
        wrk_cpu = ", ".join(f"{name} {seconds}" for name, seconds in side.get("lesson_cpu_s", {}).items())
        lines.append(f"| {side['web_processes']} | {lesson['rps']:.0f} | {lesson['p99_ms']:.1f} | {wrk_cpu} "
                     f"| {load['finished']} of {load['viewers']} | {viewers.describe_delays(load)} "
                     f"| {cpu} |")
    if two is None:
        return lines + ["", "- Two processes: the smoke run starts no second site; `make bench` measures it.", ""]
    ratio = two["lesson"]["rps"] / one["lesson"]["rps"] if one["lesson"]["rps"] else None
    if ratio is not None:
        lines += ["", f"- Lesson page throughput, two processes ÷ one: **{ratio:.2f}** (one measurement each)."]
        if ratio > usable_cores * 1.02:
            lines.append(f"- That is more than {usable_cores} cores alone explain. " + _cpu_per_request(one, two))
    return lines + [""]


def _cpu_per_request(one: dict, two: dict) -> str:
    """Daphne CPU per lesson request on each side, in words: what a ratio above the cores came from."""
    costs = []
    for side in (one, two):
        requests = side["lesson"]["rps"] * (side.get("wrk_seconds") or 0)
        used = sum(side.get("lesson_cpu_s", {}).values())
        costs.append(used * 1000 / requests if requests and used else None)
    if None in costs:
        return "The CPU each side used was not measured, so this ratio is not a per-core gain."
    return (f"Daphne spent {costs[0]:.2f} ms of CPU per request with one process and {costs[1]:.2f} ms with two "
            "(each carrying half the connections): the second process also made each request cheaper, so this "
            "ratio is not a per-core gain.")
