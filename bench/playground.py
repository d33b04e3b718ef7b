"""The web tier beside the playground: a page's p99 when idle, then while eight playground runs spin at full CPU.

wrk against the same cached lesson page of one site, in rounds of two
phases: first with nothing else going on, then while `runs` readers'
programs (`while True: pass`, each on a socket of its own, as eight readers
would send them) spin in their sandboxes. The figure is the ratio of the
median p99s of the two kinds of phase, from this one run; the target is at
most 2.

`make run`'s demo worker runs two worker demos at a time, so eight runs would
mostly wait in the queue; to have all of them spinning at once, this bench
adds a second demo worker of its own (concurrency `runs`) for the duration.
While wrk runs, the bench counts the sandboxed programs that are alive and
the CPU they get (from /proc, on this machine), so the report says how many
really spun, rather than how many were asked for. The sandboxes run at nice
10 (CODE_SANDBOX_NICE), which is what leaves the cores to the web tier.

    python -m bench.playground [--runs 8] [--seconds 8] [--rounds 3]

runs only this section against a site of its own and prints it; `make bench`
runs it with the others and writes it into docs/benchmarks.md.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import websockets
from websockets.typing import Origin

from bench import demos, pages
from bench.site import BASE_DIR, start_site
from coursesite.processes import DEMO_RUNS_QUEUE

SPIN = "while True:\n    pass\n"
TARGET_RATIO = 2.0
# The load counts as "eight spinning" when on average this share of them were (a run ending at its wall
# limit leaves a gap of a few hundred ms before its reader's next one spins).
SPINNING_SHARE = 0.95
WRK_CONNECTIONS = 8
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
SAMPLE_EVERY_S = 0.2


def _spinners() -> dict[int, int]:
    """pid -> CPU ticks used, of every process on this machine running a playground program."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/cmdline", "rb") as cmdline:
                argv = cmdline.read().split(b"\0")
            if b"/sandbox/main.py" not in argv or argv[0].endswith(b"/bwrap"):  # the program, not its bubblewrap
                continue
            with open(f"{entry.path}/stat") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        found[int(entry.name)] = int(fields[11]) + int(fields[12])
    return found


class SpinWatch:
    """Samples, in a thread, how many sandboxed programs are alive and how much CPU they are getting."""

    def __init__(self) -> None:
        self.counts: list[int] = []  # sandboxed programs alive, sample by sample
        self.first: dict[int, int] = {}
        self.last: dict[int, int] = {}
        self.started = self.stopped = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="bench-spin-watch", daemon=True)

    def _watch(self) -> None:
        while not self._stop.wait(SAMPLE_EVERY_S):
            seen = _spinners()
            self.counts.append(len(seen))
            for pid, ticks in seen.items():
                self.first.setdefault(pid, ticks)
                self.last[pid] = ticks

    def __enter__(self) -> SpinWatch:
        self.started = time.monotonic()
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join()
        self.stopped = time.monotonic()

    def summary(self) -> dict:
        seconds = max(self.stopped - self.started, 0.001)
        used = sum(self.last[pid] - self.first[pid] for pid in self.last) / CLOCK_TICKS_PER_S
        mean = sum(self.counts) / len(self.counts) if self.counts else 0.0
        return {"spinning_min": min(self.counts, default=0), "spinning_max": max(self.counts, default=0),
                "spinning_mean": round(mean, 2), "sandbox_cores": round(used / seconds, 2)}


def start_extra_worker(site, concurrency: int, env_extra: dict[str, str]) -> subprocess.Popen:
    """A second demo-runs worker against the site's servers, so `concurrency` more runs execute at once."""
    env = {key: value for key, value in os.environ.items() if key not in {"DATABASE_URL", "REDIS_URL"}}
    env.update({**site.services, **env_extra, "DJANGO_SETTINGS_MODULE": "coursesite.settings.dev"})
    hostname = f"bench-playground-{os.getpid()}@{socket.gethostname()}"
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "coursesite", "worker", "-Q", DEMO_RUNS_QUEUE,
         "--concurrency", str(concurrency), "-P", "prefork", "--hostname", hostname, "--loglevel", "WARNING",
         "--without-gossip", "--without-mingle"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    from celery import Celery

    probe = Celery(broker=site.services["REDIS_URL"])
    deadline = time.monotonic() + 60
    while not probe.control.ping(destination=[hostname], timeout=0.5):
        if process.poll() is not None or time.monotonic() > deadline:
            stop_process(process)
            raise RuntimeError("the bench's extra demo worker did not start")
    return process


def stop_process(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


async def _keep_spinning(connection, index: int, stop: asyncio.Event, answers: list[str]) -> None:
    """One reader: a spinning run, and another as soon as it ends (its 10 s wall limit), until told to stop."""
    while not stop.is_set():
        await connection.send(json.dumps({"type": "run", "demo": "playground", "params": {"code": SPIN},
                                          "ref": f"spin-{index}"}))
        while True:
            message = json.loads(await connection.recv())
            if message["type"] == "accepted":
                answers.append("accepted")
            elif message["type"] == "error":
                answers.append(message["code"])
                await asyncio.sleep(1)
                break
            elif message["type"] == "finished":
                break


async def _spin_while(site_url: str, runs: int, during) -> tuple[list[str], object]:
    """Keep `runs` playground runs spinning, one socket each; call `during()` once they all spin; then close them."""
    ws_url = site_url.replace("http://", "ws://") + "/ws/demos/"
    sockets = [await websockets.connect(ws_url, origin=Origin(site_url), max_size=None) for _ in range(runs)]
    answers: list[str] = []
    stop = asyncio.Event()
    readers = [asyncio.create_task(_keep_spinning(connection, index, stop, answers))
               for index, connection in enumerate(sockets)]
    try:
        await asyncio.to_thread(_wait_for_spinners, runs, 20.0)
        result = await asyncio.to_thread(during)
    finally:
        stop.set()
        for connection in sockets:  # a closed socket stops its run: the sandboxes are killed
            await connection.close()
        await asyncio.gather(*readers, return_exceptions=True)
    return answers, result


def _wait_for_spinners(runs: int, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while len(_spinners()) < runs and time.monotonic() < deadline:
        time.sleep(0.1)


def _site_worker() -> str:
    """The Celery hostname of the demo worker `make run` starts (coursesite.processes.demo_worker_argv)."""
    return f"worker@{socket.gethostname()}"


def measure(site, *, runs: int, seconds: int, rounds: int = 1, env_extra: dict[str, str] | None = None,
            warm_seconds: int = 2) -> dict:
    """`rounds` times: page p99 idle, then with `runs` spinning playground runs; the ratio, and what really spun.

    Idle and loaded phases alternate, so that load from elsewhere on the
    machine, which drifts over a minute, falls on both; the ratio is the
    median loaded p99 over the median idle p99.
    """
    demos.wait_until_settled(site)
    url = site.url + pages.LESSON_PATH
    pages.wrk(url, connections=WRK_CONNECTIONS, seconds=warm_seconds)  # warm the page cache and the connections
    extra = start_extra_worker(site, runs, env_extra or {})
    from celery import Celery

    control = Celery(broker=site.services["REDIS_URL"]).control
    # The site's own worker would take two runs and hold two more in reserve behind them; while this section
    # runs, only the bench's worker takes runs from the queue, so that all of them run at once.
    control.cancel_consumer(DEMO_RUNS_QUEUE, destination=[_site_worker()], reply=True, timeout=5)
    phases: list[dict] = []
    try:
        for _ in range(rounds):
            idle_load = round(os.getloadavg()[0], 2)
            phases.append({"phase": "idle", "load_before": idle_load,
                           **pages.wrk(url, connections=WRK_CONNECTIONS, seconds=seconds)})
            watch = SpinWatch()

            def loaded_wrk(watch: SpinWatch = watch) -> dict:
                with watch:
                    return pages.wrk(url, connections=WRK_CONNECTIONS, seconds=seconds)

            load_before = round(os.getloadavg()[0], 2)
            answers, loaded = asyncio.run(_spin_while(site.url, runs, loaded_wrk))
            assert isinstance(loaded, dict)
            phases.append({"phase": "spinning", "load_before": load_before, **loaded, **watch.summary(),
                           "accepted": answers.count("accepted"),
                           "refused": [answer for answer in answers if answer != "accepted"]})
            demos.wait_until_settled(site)
    finally:
        control.add_consumer(DEMO_RUNS_QUEUE, destination=[_site_worker()], reply=True, timeout=5)
        stop_process(extra)
    idle_p99 = statistics.median(phase["p99_ms"] for phase in phases if phase["phase"] == "idle")
    loaded_p99 = statistics.median(phase["p99_ms"] for phase in phases if phase["phase"] == "spinning")
    spinning = [phase for phase in phases if phase["phase"] == "spinning"]
    return {"runs": runs, "seconds": seconds, "rounds": rounds, "phases": phases, "cores": os.cpu_count(),
            "idle_p99_ms": idle_p99, "loaded_p99_ms": loaded_p99,
            "ratio": loaded_p99 / idle_p99 if idle_p99 else None,
            "spinning_mean": min(phase["spinning_mean"] for phase in spinning),
            "refused": sorted({code for phase in spinning for code in phase["refused"]}),
            "command": phases[0]["command"]}


def render(result: dict, heading: str = "## 8. Playground beside the web tier") -> list[str]:
    """The section's Markdown lines."""
    runs = result["runs"]
    lines = [heading, "",
             f"`{result['command']}` against the cached lesson page, {result['rounds']} round(s) of: idle, then while "
             f"{runs} playground runs (`while True: pass`, one socket each, each socket starting another run when "
             f"its last one ends at the 10 s wall limit) spin in their sandboxes. A second demo worker (concurrency "
             f"{runs}) takes the runs for this section, so that all of them run at once (`make run`'s worker runs "
             "two at a time).", "",
             "| phase | load average before | req/s | p50 ms | p99 ms | programs alive (min–max, mean) "
             "| cores they got |", "|---|---|---|---|---|---|---|"]
    for phase in result["phases"]:
        alive = cores = ""
        if phase["phase"] == "spinning":
            alive = f"{phase['spinning_min']}–{phase['spinning_max']}, {phase['spinning_mean']:.2f}"
            cores = f"{phase['sandbox_cores']:.2f} of {result['cores']}"
        lines.append(f"| {phase['phase']} | {phase['load_before']:.2f} | {phase['rps']:.0f} | {phase['p50_ms']:.1f} "
                     f"| {phase['p99_ms']:.1f} | {alive} | {cores} |")
    lines.append("")
    if result["refused"]:
        lines.append(f"- Runs refused: {', '.join(result['refused'])}")
    if result["ratio"] is None:
        lines.append("- p99 spinning ÷ idle: not measured (wrk reported no p99)")
    else:
        all_spun = result["spinning_mean"] >= SPINNING_SHARE * runs
        met = result["ratio"] <= TARGET_RATIO and all_spun
        verdict = "**met**" if met else "**missed**"
        if not all_spun:
            verdict += f" — in one round only {result['spinning_mean']:.1f} of the {runs} runs were spinning on average"
        if any(phase["load_before"] > result["cores"] for phase in result["phases"]):
            verdict += (" — the load average was above the cores before the phases: the machine was shared with "
                        "other work, so these are not an idle server's figures")
        lines.append(f"- Median p99 spinning ÷ median p99 idle: {result['loaded_p99_ms']:.1f} ÷ "
                     f"{result['idle_p99_ms']:.1f} ms = **{result['ratio']:.2f}**. Target ≤ {TARGET_RATIO:g}: " + verdict)
    lines.append("")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.playground")
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--json", help="also write the measurements to this file")
    args = parser.parse_args(argv)
    var_root = Path(tempfile.mkdtemp(prefix="bench-playground-", dir=BASE_DIR / "var"))
    started = time.monotonic()
    env = {"COURSESITE_VAR_DIR": str(var_root / "site"), "DEBUG": "0", "SECRET_KEY": "bench-only-" + os.urandom(24).hex(),
           "DEMO_MAX_WORKER_RUNS": str(max(args.runs, 8))}
    site = start_site(var_root / "site", extra_env=env)
    try:
        result = measure(site, runs=args.runs, seconds=args.seconds, rounds=args.rounds, env_extra=env)
    finally:
        site.stop()
        shutil.rmtree(var_root, ignore_errors=True)
    print("\n".join(render(result)))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(f"[bench] {time.monotonic() - started:.0f} s", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
