"""`make bench`: load a site started the way `make run` starts it, write docs/benchmarks.md.

    python -m bench [--smoke] [--out docs/benchmarks.md]

Figures are ratios measured side by side in one run wherever a comparison
exists; absolute times are reported, never asserted. `--smoke` runs the same
code at tiny sizes (the test suite does this so the scripts cannot rot).
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench import asgi_servers, demos, jobqueue, memory, pages, parallelism, playground, processes, scaling, viewers
from bench.site import BASE_DIR, start_site

FULL = {
    "wrk_connections": 64, "wrk_seconds": 10, "viewers": 2000,
    "scaling_points": [250, 500, 1000, 2000, 3000, 5000, 10_000], "server_readers": 2000,
    "viewer_params": {"requests": 5, "wait_ms": 300, "jitter_ms": 50, "mode": "concurrent"},
    "one_cook_requests": 10_000, "c10k_event_loop": 10_000, "c10k_threads": 1_000, "jobs": 500,
    "race_increments": 100, "offload": {}, "parallelism_runs": 10, "second_site": True,
    "playground_runs": 8, "playground_seconds": 8, "playground_rounds": 3, "playground_warm_seconds": 2,
    "one_cook_runs": 3,
}
SMOKE = {
    "wrk_connections": 8, "wrk_seconds": 1, "viewers": 10,
    # The curve at two tiny points; the three-server comparison only in the full run.
    "scaling_points": [5, 10], "server_readers": None,
    "viewer_params": {"requests": 2, "wait_ms": 50, "jitter_ms": 10, "mode": "concurrent"},
    "one_cook_requests": 50, "one_cook_runs": 1, "c10k_event_loop": 50, "c10k_threads": 10, "jobs": 10,
    # Small jobs and one parallelism run: the smoke proves the sections run and render, not their figures.
    "race_increments": 10, "offload": {"jobs": 1, "job_ms": 50}, "parallelism_runs": 1, "second_site": False,
    # One spinning run is enough to start the extra worker, spin, watch and stop it.
    "playground_runs": 1, "playground_seconds": 1, "playground_rounds": 1, "playground_warm_seconds": 1,
}
# Generous limits for the bench site only: up to 10,000 sockets come from one address, so what turns
# readers away is the per-process admission gate (DEMO_SOCKETS_PER_PROCESS, at its default) and its
# loop-lag check with its line at the door (on, at the defaults, as on a real site; bench.site turns it
# off for the tests' sites).
# Sections 1-8 measure one Daphne (WEB_PROCESSES=1); section 9 puts one and two side by side.
SITE_ENV = {"DEMO_SOCKETS_PER_IP": "20000", "DEMO_MAX_LOOP_RUNS": "20000", "DEMO_MAX_WORKER_RUNS": "50",
            "DEMO_ADMIT_MAX_LAG_MS": "50", "DEMO_ADMIT_WAIT_S": "3",
            # The client is one Python process on the site's own two cores: opening thousands of sockets at once,
            # it sends a request's headers seconds after its TCP connect, and the site cuts such connections as
            # slow clients after 5 s (7,700 of 10,000 were, measured). Ten thousand real readers are ten thousand
            # machines; the bench site allows its one client 60 s.
            "DEMO_REQUEST_HEADERS_TIMEOUT_S": "60",
            "WEB_PROCESSES": "1"}
RACE_MODES = ["atomic-update", "read-modify-write", "select-for-update", "optimistic"]


def machine() -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "usable_cores": len(os.sched_getaffinity(0)),
        "memory_gib": round(psutil.virtual_memory().total / 2**30, 1),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpu": _cpu_model(),
    }


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def verdict(met: bool | None, why: str = "") -> str:
    if met is None:
        return "not measured" + (f" ({why})" if why else "")
    return ("**met**" if met else "**missed**") + (f" — {why}" if why else "")


def run_all(sizes: dict, log) -> dict:
    results: dict = {"machine": machine(), "sizes": sizes}
    var_root = Path(tempfile.mkdtemp(prefix="bench-", dir=BASE_DIR / "var"))
    site_env = {**SITE_ENV, "COURSESITE_VAR_DIR": str(var_root / "site"), "DEBUG": "0",
                "SECRET_KEY": "bench-only-" + os.urandom(24).hex()}
    site = start_site(var_root / "site", extra_env=site_env)
    try:
        log("memory, idle")
        results["memory_idle"] = memory.sample(site)
        log("pages (wrk)")
        results["pages"] = pages.measure(site, connections=sizes["wrk_connections"], seconds=sizes["wrk_seconds"],
                                         env_extra=site_env)
        log(f"{sizes['viewers']} websocket viewers")
        results["viewers"] = viewers.measure(site, viewers=sizes["viewers"], params=sizes["viewer_params"], during=memory.sample)
        results["scaling"] = scaling.measure(site, points=sizes["scaling_points"], params=sizes["viewer_params"], log=log)
        if sizes["server_readers"]:
            log(f"{sizes['server_readers']} websocket readers on Daphne, Uvicorn, Granian")
            results["asgi_servers"] = asgi_servers.measure(site, readers=sizes["server_readers"],
                                                           params=sizes["viewer_params"], env_extra=site_env)
        else:
            results["asgi_servers"] = None
        log("one-cook fidelity")
        # Measured on a settled site, not amid the viewers' last records: one warm-up run (the first
        # 10k run after the viewer load came out 0.1-0.2 slower in every bench), then three, the median reported.
        demos.wait_until_settled(site)
        # The default mode (every wait a TCP round trip to the upstream), then the timer stand-in beside it.
        for key, io in (("one_cook", "network"), ("one_cook_timer", "timer")):
            results[key] = demos.run_demo_repeatedly(
                site, "one-cook", {"requests": sizes["one_cook_requests"], "mode": "concurrent", "io": io},
                times=sizes["one_cook_runs"], key=lambda run: run["total_ms"] / run["longest_wait_ms"], warmups=1)
        log("c10k")
        results["c10k_event_loop"] = demos.run_demo(site, "c10k", {"mode": "event-loop", "connections": sizes["c10k_event_loop"]})
        results["c10k_threads"] = demos.run_demo(site, "c10k", {"mode": "threads", "connections": sizes["c10k_threads"]})
        log("job queue")
        results["jobs"] = jobqueue.measure(site, jobs=sizes["jobs"])
        log("offload")
        results["offload_inline"] = demos.run_demo(site, "offload", {"mode": "inline", **sizes["offload"]})
        results["offload_celery"] = demos.run_demo(site, "offload", {"mode": "celery", **sizes["offload"]})
        log(f"parallelism, {sizes['parallelism_runs']} runs")
        results["parallelism"] = parallelism.measure(site, runs=sizes["parallelism_runs"])
        log(f"playground, {sizes['playground_runs']} runs spinning")
        results["playground"] = playground.measure(site, runs=sizes["playground_runs"],
                                                   seconds=sizes["playground_seconds"],
                                                   rounds=sizes["playground_rounds"], env_extra=site_env,
                                                   warm_seconds=sizes["playground_warm_seconds"])
        log("counter race")
        results["race"] = {
            mode: demos.run_demo(site, "counter-race", {"mode": mode, "workers": 8, "increments": sizes["race_increments"]})
            for mode in RACE_MODES
        }
        log("one web process, then two")
        side_by_side = {"connections": sizes["wrk_connections"], "seconds": sizes["wrk_seconds"],
                        "viewer_count": sizes["viewers"], "params": sizes["viewer_params"]}
        if sizes["second_site"]:
            site.stop()
            results["web_one"] = processes.measure_fresh(var_root / "site-1", processes=1, site_env=site_env,
                                                         **side_by_side)
            results["web_two"] = processes.measure_fresh(var_root / "site-2", processes=2, site_env=site_env,
                                                         **side_by_side)
        else:
            # The smoke run starts no more sites: starting two processes is what
            # tests/test_several_web_processes.py proves.
            demos.wait_until_settled(site)
            results["web_one"] = processes.measure_site(site, **side_by_side)
            results["web_two"] = None
    finally:
        site.stop()
        shutil.rmtree(var_root, ignore_errors=True)
    return results


def _ok(summary: dict) -> bool:
    return isinstance(summary, dict) and summary.get("status") == "succeeded"


def _total_to_longest(runs: list[dict]) -> str:
    """one-cook's total ÷ longest wait for each run, or the status of a run that did not succeed."""
    return ", ".join(f"{run['total_ms'] / run['longest_wait_ms']:.2f}" if _ok(run) else str(run.get("status")) for run in runs)


SERVER_LABELS = {"daphne": "Daphne (the site, as `make run` starts it)", "uvicorn": "Uvicorn", "granian": "Granian"}


def render_pages(p: dict) -> list[str]:
    """Section 1: hello view and lesson page on each ASGI server, and the lesson page's targets (on Daphne)."""
    lines = ["Each server serves the same app against the same PostgreSQL and Redis, one process, one after another; "
             "the lesson page was fetched once first (it is then answered from the page cache).", "",
             "| server | page | command | req/s | p50 ms | p99 ms | non-2xx |", "|---|---|---|---|---|---|---|"]
    servers = p.get("servers") or {"daphne": {"hello": p["hello_daphne"], "lesson": p["lesson_daphne"]}}
    for name, measured in servers.items():
        label = SERVER_LABELS.get(name, name)
        if "error" in measured:
            lines.append(f"| {label} | — | — | — | — | — | could not serve the app: {measured['error'][:200]} |")
            continue
        for page, page_label in (("hello", "hello view"), ("lesson", "lesson page")):
            row = measured[page]
            lines.append(f"| {label} | {page_label} | `{row['command']}` | {row['rps']:.0f} | {row['p50_ms']:.1f} "
                         f"| {row['p99_ms']:.1f} | {row['non_2xx']} |")
    lines.append("")
    for name, measured in servers.items():
        if "error" not in measured and measured.get("p99_ratio") is not None:
            lines.append(f"- {SERVER_LABELS.get(name, name)}: lesson page ÷ hello view, req/s **{measured['rps_ratio']:.2f}**, "
                         f"p99 **{measured['p99_ratio']:.2f}**.")
    rps_ratio, p99_ratio = p["lesson_to_hello"], p.get("lesson_p99_to_hello")
    met = p99_ratio is not None and p99_ratio <= 2 and rps_ratio >= 1.5
    lines.append("- Target on Daphne: lesson page p99 ≤ 2 × the hello view's while serving ≥ 1.5 × its requests a second: "
                 + (verdict(met, f"p99 {p99_ratio:.2f} ×, req/s {rps_ratio:.2f} ×") if p99_ratio is not None
                    else verdict(None, "wrk printed no p99")))
    daphne = servers.get("daphne", {})
    for name in ("uvicorn", "granian"):
        other = servers.get(name, {})
        if "error" not in other and "lesson" in other and "lesson" in daphne:
            lesson, hello = (other[page]["rps"] / daphne[page]["rps"] for page in ("lesson", "hello"))
            lines.append(f"- {SERVER_LABELS[name]} ÷ Daphne, req/s: lesson page **{lesson:.2f}**, hello view **{hello:.2f}**.")
    return lines


def render(results: dict, command: str, svg_path: str = "img/scaling.svg") -> str:
    m, p, v = results["machine"], results["pages"], results["viewers"]
    lines = [
        "# Benchmarks",
        "",
        f"Written by `{command}` on {datetime.datetime.now(datetime.UTC):%Y-%m-%d %H:%M} UTC. "
        "Every figure below comes from that one run; ratios compare things measured side by side in it.",
        "",
        "Where a target is missed, [benchmark-notes.md](benchmark-notes.md) says where the time goes (py-spy profile) "
        "and what would move it.",
        "",
        "## Machine",
        "",
        f"- CPU: {m['cpu']} — {m['cpu_count']} cores ({m['usable_cores']} usable by the process)",
        f"- Memory: {m['memory_gib']} GiB",
        f"- Python {m['python']} on {m['platform']}",
        "- Site: started by `python -m coursesite.stack run` (what `make run` runs): embedded PostgreSQL 16 and Redis, "
        "one Daphne process (`WEB_PROCESSES=1`; section 9 sets one beside two), the Celery worker(s), `DEBUG=0`.",
        "",
        "## 1. Pages",
        "",
    ]
    lines += render_pages(p)
    lines += [
        "",
        "## 2. Websocket viewers",
        "",
        f"{v['viewers']} readers arriving over one second, each opening a websocket and running `one-cook` with "
        f"`{results['sizes']['viewer_params']}`. The client (one Python process, no permessage-deflate, its "
        "collector off during the load) shares the machine's cores with the site. "
        f"{v['observer']['readers']} of the readers come from a second client process, the observer, arriving over "
        "the same second: with few sockets its loop is never late, so its delays are the site's (bench/viewers.py).",
        "",
        f"- Finished: **{v['finished']} of {v['viewers']}**; refused with `busy`: {v['refused']}; failed: "
        f"**{v['failed']}**; batch gaps: **{v['gaps']}**, repeats: {v['repeats']}; "
        f"whole load took {v['elapsed_s']} s ({v['events']} events received).",
        f"- Handshake (client's connect to open) p50 {v['handshake_p50_ms']} ms, p99 {v['handshake_p99_ms']} ms: "
        "this is the wait at the door, in the kernel's listen queue while Daphne has stopped accepting and then in "
        "its admission line (at most `DEMO_ADMIT_WAIT_S`), since the readers arrive faster than one process serves "
        f"them ({v['finished'] / max(v['elapsed_s'], 0.1):.0f} finished a second over the load). "
        f"The two clients used {v['client_cpu_s']} s of CPU together.",
        f"- Delay from an event's server time to the client's receipt, the observer's readers "
        f"({v['observer']['finished']} of {v['observer']['readers']} finished): "
        f"p50 **{v['observer']['delay_p50_ms']} ms**, p99 " + (f"**{viewers.observed_p99_ms(v)} ms** "
        if viewers.observed_p99_ms(v) is not None else "not given: too few events ") +
        f"({v['observer']['events']} events; the observer's own lag at most {v['observer']['lag_max_ms']} ms). "
        "The client's clock at receipt minus the server's at the event, one machine and one clock; it includes "
        "batching: events wait up to 50 ms for their batch.",
        f"- Every admitted reader's, as the load client read them: p50 {v['delay_p50_ms']} ms, p99 "
        f"{v['delay_p99_ms']} ms, with the load client's own lag p99 {v['client_lag_p99_ms']} ms and at most "
        f"{v['client_lag_max_ms']} ms counted in.",
    ]
    p99 = viewers.observed_p99_ms(v)
    met = v["finished"] == v["viewers"] and v["gaps"] == 0 and p99 is not None and p99 <= 250
    lines.append(f"- Target {v['viewers']}/{v['viewers']} finished, 0 gaps, p99 ≤ 250 ms: " + verdict(met))
    if v["failures"]:
        lines.append(f"- First failures: {v['failures']}")
    lines += scaling.render(results["scaling"], svg_path=svg_path)
    lines += asgi_servers.render(results["asgi_servers"], results["sizes"]["server_readers"] or 0)
    oc = results["one_cook"]
    lines += ["", "## 3. Demo fidelity at scale", ""]
    if _ok(oc):
        ratio = oc["total_ms"] / oc["longest_wait_ms"]
        lines.append(f"- `one-cook`, {oc['requests']} concurrent requests, each a TCP round trip to the upstream process "
                     f"({oc['requests_sent']} requests on {oc['connections_made']} connections, "
                     f"{oc['bytes_sent'] + oc['bytes_received']} bytes), once the viewers' runs had ended: a warm-up run "
                     f"(ratio {_total_to_longest(oc['warmup_runs'])}, not counted), then {len(oc['runs'])} runs one after "
                     f"another (ratios {_total_to_longest(oc['runs'])}); the median run: total {oc['total_ms']:.0f} ms, "
                     f"longest wait {oc['longest_wait_ms']:.0f} ms, ratio **{ratio:.2f}**. Target ≤ 1.5 (the median "
                     "run): " + verdict(ratio <= 1.5))
        counted = [run["total_ms"] / run["longest_wait_ms"] for run in oc["runs"] if _ok(run)]
        every = len(counted) == len(oc["runs"]) and bool(counted) and max(counted) <= 1.3
        lines.append("- Target ≤ 1.3 in every counted run (not only the median): "
                     + verdict(every, f"highest {max(counted):.2f}" if counted else "no run succeeded"))
        timer = results["one_cook_timer"]
        if _ok(timer):
            lines.append(f"- The same, with `asyncio.sleep` standing in for the round trips (timer mode): ratios "
                         f"{_total_to_longest(timer['runs'])}, median **{timer['total_ms'] / timer['longest_wait_ms']:.2f}**.")
    else:
        lines.append(f"- `one-cook`: {verdict(None, str(oc))}")
    ev, th = results["c10k_event_loop"], results["c10k_threads"]
    if _ok(ev) and _ok(th):
        per_ev, per_th = ev["rss_bytes_per_connection"], th["rss_bytes_per_connection"]
        lines += [
            f"- `c10k` event loop: {ev['connections_held']} connections held, **{per_ev / 1024:.2f} KiB** resident per "
            f"connection, {ev['threads_used']} thread(s). Target ≤ 4 KiB: " + verdict(per_ev <= 4096),
            f"- `c10k` threads: {th['connections_held']} connections, **{per_th / 1024:.1f} KiB** per connection, "
            f"{th['threads_used']} threads; **{per_th / max(per_ev, 1):.1f}×** the event loop's. Target ≥ 5×: "
            + verdict(per_th >= 5 * per_ev),
        ]
    else:
        lines.append(f"- `c10k`: {verdict(None, 'demo unavailable or failed: ' + str(ev.get('text', ev))[:200])}")
    j = results["jobs"]
    lines += ["", "## 4. Job queue", "",
              f"- {j['jobs']} tiny Celery jobs on the default worker: enqueue-to-start p50 **{j['start_latency_p50_ms']} ms**, "
              f"p99 **{j['start_latency_p99_ms']} ms**; **{j['jobs_per_s']} jobs/s** end to end."]
    oi, ocel = results["offload_inline"], results["offload_celery"]
    if _ok(oi) and _ok(ocel):
        ratio = oi['probe_tail_ms'] / max(ocel['probe_tail_ms'], 0.001)
        lines.append(f"- `offload` probe tail ({oi['probe_tail']} / {ocel['probe_tail']}): inline {oi['probe_tail_ms']:.1f} ms, "
                     f"celery {ocel['probe_tail_ms']:.1f} ms: inline ÷ celery = **{ratio:.1f}×**.")
    else:
        broken = oi if not _ok(oi) else ocel
        lines.append(f"- `offload`: {verdict(None, 'demo unavailable or failed: ' + str(broken.get('text', broken))[:200])}")
    race = results["race"]
    lines += ["", "## 5. Race", ""]
    if all(_ok(race[mode]) for mode in RACE_MODES):
        base = race["atomic-update"]["increments_per_s"]
        lines += ["| mode | increments/s | ÷ atomic-update | lost |", "|---|---|---|---|"]
        for mode in RACE_MODES:
            row = race[mode]
            lines.append(f"| {mode} | {row['increments_per_s']:.0f} | {row['increments_per_s'] / base:.2f} "
                         f"| {row['lost']} of {row['expected']} |")
        rmw = race["read-modify-write"]
        lines.append(f"\n`read-modify-write` lost **{rmw['lost'] / rmw['expected']:.0%}** of its increments.")
    else:
        broken = race["atomic-update"]
        lines.append(f"- `counter-race`: {verdict(None, 'demo unavailable or failed: ' + str(broken.get('text', broken))[:200])}")
    idle, loaded = results["memory_idle"], v.get("sampled_during_load") or {}
    lines += ["", "## 6. Memory", "", "| process | idle MiB | during the websocket load MiB |", "|---|---|---|",
              f"| Daphne | {idle['daphne_mib']} | {loaded.get('daphne_mib', '—')} |",
              f"| Celery worker (with its pool) | {idle['worker_mib']} | {loaded.get('worker_mib', '—')} |", ""]
    lines += parallelism.render(results["parallelism"])
    lines += playground.render(results["playground"])
    lines += processes.render(results["web_one"], results["web_two"], m["usable_cores"])
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the scripts work")
    parser.add_argument("--out", default=str(BASE_DIR / "docs" / "benchmarks.md"))
    args = parser.parse_args(argv)
    sizes = SMOKE if args.smoke else FULL
    started = time.monotonic()
    results = run_all(sizes, log=lambda text: print(f"[bench] {text}", flush=True))
    command = "make bench" if not args.smoke else "python -m bench --smoke"
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    svg = Path(args.out).parent / "img" / "scaling.svg"
    svg.parent.mkdir(parents=True, exist_ok=True)
    svg.write_text(scaling.svg(results["scaling"]))
    Path(args.out).write_text(render(results, command, svg_path=svg.relative_to(Path(args.out).parent).as_posix()))
    print(f"[bench] wrote {args.out} in {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
