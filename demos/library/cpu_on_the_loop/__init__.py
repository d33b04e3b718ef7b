"""CPU on the loop: which heavy steps `to_thread` rescues, and which need a process.

A sandbox event loop (a fresh one, made with `asyncio.run` in a sandbox
process the worker starts, sandbox.py beside this module; the site's own loop
is never touched) runs a heartbeat that wants to tick
every 20 ms and serves a stream of small requests, one every 10 ms, each a
real round trip over a loopback TCP socket to an echo server on the same
loop. After a short quiet spell, one heavy step of about `step_ms` runs. What
it does is `work`:

- `wait`: `time.sleep`, a blocking wait that holds no GIL while it sleeps;
- `pure-python`: a Python arithmetic loop, which holds the GIL while it runs;
- `c-releases-gil`: `hashlib.pbkdf2_hmac`, C code that lets go of the GIL.

Where it runs is `offload`: `inline` (on the loop's own thread),
`to_thread` (`asyncio.to_thread`, another thread of the same process) or
`process-pool` (a one-process `ProcessPoolExecutor` made with the "spawn" start method,
started before the clock starts, so its start-up is not part of the step).

A reader should see the heartbeat chart spike to the whole step for every
`inline` run; stay flat under `to_thread` for `wait` and `c-releases-gil`;
rise under `to_thread` for `pure-python`, because the loop thread has to win
the GIL back from the busy thread each time it wakes (after up to
`sys.getswitchinterval()`, 5 ms by default), so every loop iteration starts
late and a request that needs several iterations is late several times; and
stay flat again with the process pool, where the step has a GIL of its own.
The quiet spell before the step is the run's own baseline.
"""
import json
import queue
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from demos import stats
from demos.params import ChoiceParam, IntParam

slug = "cpu-on-the-loop"
title = "CPU on the loop, threads and the GIL"
concept = ("A heavy step on the loop freezes it; to_thread rescues waits and C code that releases the GIL, but "
           "pure-Python work in a thread still starves the loop of the GIL; a process pool keeps it responsive.")
placement = "worker"  # it blocks and burns CPU on purpose, and starts processes
burns_cpu = True  # its steps compute (pure Python or C hashing): one reader's runs take turns
time_limit_s = 30.0
lanes = "request"
headline = ("heartbeat_max_lag_ms", "quiet_heartbeat_max_lag_ms", "step_ms")
summary_fields = {
    "heartbeat_max_lag_ms": ("Heartbeat's worst lag", "ms"), "heartbeat_p99_lag_ms": ("Heartbeat lag, 99th percentile", "ms"),
    "request_p99_ms": ("Request latency, 99th percentile", "ms"), "request_max_ms": ("Slowest request", "ms"),
    "step_ms": ("The CPU step", "ms"), "quiet_request_median_ms": ("Median request before the step", "ms"),
    "step_request_median_ms": ("Median request during the step", "ms"),
    "quiet_heartbeat_max_lag_ms": ("Heartbeat's worst lag before the step", "ms"), "heartbeats": ("Heartbeats timed", ""),
    "requests": ("Requests served", ""), "switch_interval_ms": ("GIL switch interval", "ms"),
    "heartbeats_during_step": ("Heartbeats that ran while the step ran", ""),
    "setup_ms": ("Sandbox start-up", "ms"),
}
waits = "real socket round trips to an echo server; the heavy step is CPU work or time.sleep"
params = (
    ChoiceParam("work", "pure-python", ("wait", "pure-python", "c-releases-gil"), label="Heavy step",
                help="wait: time.sleep; pure-python: a Python loop holding the GIL; "
                     "c-releases-gil: hashlib.pbkdf2_hmac, which releases the GIL."),
    ChoiceParam("offload", "to_thread", ("inline", "to_thread", "process-pool"), label="Runs",
                help="inline: on the loop's thread; to_thread: asyncio.to_thread; "
                     "process-pool: a ProcessPoolExecutor with one worker process."),
    IntParam("step_ms", 1_000, 200, 3_000, label="Step (ms)",
             help="How long the heavy step takes when it runs alone (CPU work is sized on this machine first)."),
)
smoke_params = {"work": "c-releases-gil", "offload": "process-pool", "step_ms": 200}
lane_states = frozenset({"queued", "waiting", "running", "blocked", "done"})

SANDBOX = Path(__file__).with_name("sandbox.py")
QUIET_S = 0.300  # the sandbox's quiet spell before the step (sandbox.QUIET_S): the run's own baseline
TAIL_S = 0.300  # requests keep arriving this long after the step should have ended
REQUEST_EVERY_S = 0.010
BUSY_BASELINE_MS = 30.0  # a quiet-spell heartbeat later than this means the machine itself was too busy
READY_TIMEOUT_S = 20.0  # sizing the work and starting the pool's process
SWITCH_INTERVAL_MS = round(sys.getswitchinterval() * 1000, 1)  # the sandbox is a fresh interpreter: the default

WORK_LABELS = {"wait": "time.sleep", "pure-python": "a pure-Python loop", "c-releases-gil": "hashlib.pbkdf2_hmac"}
OFFLOAD_LABELS = {"inline": "on the loop's own thread", "to_thread": "in a thread via asyncio.to_thread",
                  "process-pool": "in a process pool"}


class _Sandbox:
    """sandbox.py in a process of its own; its JSON lines arrive on `lines`, None once its output ends."""

    def __init__(self, work: str, offload: str, step_ms: int, request_count: int) -> None:
        self.errors = tempfile.TemporaryFile()
        self.process = subprocess.Popen(
            [sys.executable, str(SANDBOX), work, offload, str(step_ms), str(request_count),
             "--max-seconds", str(int(time_limit_s))],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=self.errors, text=True,
        )
        self.lines: queue.Queue = queue.Queue()
        self.reader = threading.Thread(target=self._read, name="cpu-on-the-loop-output", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:  # closed here, by its only reader
            for line in self.process.stdout:
                self.lines.put(json.loads(line))
        self.lines.put(None)

    def next_line(self, emit, timeout_s: float) -> dict:
        """The next report; RuntimeError if the sandbox ends first or says nothing for `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            emit.check_cancelled()
            try:
                line = self.lines.get(timeout=0.05)
            except queue.Empty:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the sandbox process said nothing for {timeout_s:g} s") from None
                continue
            if line is None:
                raise RuntimeError(f"the sandbox process exited (code {self.process.wait(timeout=5)}) before "
                                   f"finishing{self._last_error()}")
            return line

    def _last_error(self) -> str:
        self.errors.seek(0)
        lines = self.errors.read().decode(errors="replace").strip().splitlines()
        return f": {lines[-1]}" if lines else ""

    def close(self) -> None:
        """Stop the sandbox (its pool's process dies with it) and wait for both to be gone."""
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=5)
        self.reader.join(timeout=2)
        self.errors.close()


def run(params, emit):
    """Start the sandbox, draw what it reports on the run's timeline, and sum up the samples it measured."""
    work, offload, step_ms_wanted = params["work"], params["offload"], params["step_ms"]
    request_count = round((QUIET_S + step_ms_wanted / 1000 + TAIL_S) / REQUEST_EVERY_S)
    setup_started = time.perf_counter()
    sandbox = _Sandbox(work, offload, step_ms_wanted, request_count)
    try:
        ready = sandbox.next_line(emit, READY_TIMEOUT_S)
        if ready["kind"] != "ready":
            raise RuntimeError(f"the sandbox process started with {ready!r}")
        setup_ms = (ready["at"] - setup_started) * 1000
        origin_ms = emit("lanes", count=request_count + 1,
                         labels=["heavy step"] + [f"request {number}" for number in range(1, request_count + 1)])
        origin = ready["at"]
        while True:
            line = sandbox.next_line(emit, time_limit_s)
            kind, at = line.pop("kind"), line.pop("at")
            if kind == "measured":
                break
            if kind == "failed":
                raise RuntimeError(line["reason"])
            emit(kind, t=round(origin_ms + (at - origin) * 1000, 1), **line)
    finally:
        sandbox.close()
    return _summary(work, offload, line, setup_ms)


def _median(values: list[float]) -> float:
    return round(stats.percentile(values, 0.5), 1) if values else 0.0


def _summary(work: str, offload: str, measured: dict, setup_ms: float) -> dict:
    """The measured claim, in words and numbers: during the step against the quiet spell before it."""
    started, ended = measured["step"]
    lags = [lag for _, lag in measured["heartbeat_lags"]]
    latencies = [latency for _, latency in measured["request_latencies"]]
    # The baseline is what was over before the step began; what arrived during the step is the comparison.
    quiet_lags = [lag for due, lag in measured["heartbeat_lags"] if due + lag / 1000 < started]
    quiet_latencies = [latency for arrived, latency in measured["request_latencies"]
                       if arrived + latency / 1000 < started]
    step_latencies = [latency for arrived, latency in measured["request_latencies"] if started <= arrived < ended]
    step_ms = round((ended - started) * 1000, 1)
    max_lag_ms = round(max(lags, default=0.0), 1)
    quiet_max_lag_ms = round(max(quiet_lags, default=0.0), 1)
    quiet_median_ms, step_median_ms = _median(quiet_latencies), _median(step_latencies)
    spread: dict[str, float] = {}
    lag_tail, request_tail = stats.tail(lags), stats.tail(latencies)
    if lag_tail.is_percentile:
        spread["heartbeat_p99_lag_ms"] = round(lag_tail.value, 1)
    if request_tail.is_percentile:
        spread["request_p99_ms"] = round(request_tail.value, 1)
    tail = f"{request_tail.label} requests: {request_tail.value:.0f} ms"

    # A tick "ran during the step" when its callback ran (due + lag) before the step ended. Frozen means none did:
    # one long gap inside a step in which the loop still ticked is lateness, not a freeze.
    ran_during = sum(1 for due, lag in measured["heartbeat_lags"] if started <= due + lag / 1000 < ended)
    if ran_during == 0 and max_lag_ms >= 0.5 * step_ms:
        verdict = "the loop froze for the whole step"
    elif step_median_ms > 2.5 * max(quiet_median_ms, 1.0) or max_lag_ms >= 0.5 * step_ms:
        verdict = f"the loop kept turning, but late ({ran_during} heartbeats ran during the step)"
    else:
        verdict = "the loop stayed responsive"
    text = (f"With {WORK_LABELS[work]} {OFFLOAD_LABELS[offload]} for {step_ms:.0f} ms, {verdict}: requests that "
            f"arrived during the step took {step_median_ms:.1f} ms at the median against {quiet_median_ms:.1f} ms "
            f"before it, and the 20 ms heartbeat was up to {max_lag_ms:.0f} ms late (max of {len(lags)} ticks; at most "
            f"{quiet_max_lag_ms:.0f} ms before the step); {tail}.")
    if quiet_max_lag_ms > BUSY_BASELINE_MS:
        text += (f" Even before the step the heartbeat lagged {quiet_max_lag_ms:.0f} ms: the machine was busy, "
                 "so read this run as noise.")
    return {
        "text": text,
        "heartbeat_max_lag_ms": max_lag_ms,
        **spread,
        "request_max_ms": round(max(latencies, default=0.0), 1),
        "step_ms": step_ms,
        "quiet_request_median_ms": quiet_median_ms,
        "step_request_median_ms": step_median_ms,
        "quiet_heartbeat_max_lag_ms": quiet_max_lag_ms,
        "heartbeats": len(lags),
        "heartbeats_during_step": ran_during,
        "requests": len(latencies),
        "switch_interval_ms": SWITCH_INTERVAL_MS,
        "setup_ms": round(setup_ms, 1),
    }


# "Edit and run" opens this program: the idea above in a few lines of standard-library Python that a
# reader can change and run (the sandbox has no network and no database: timers, threads, processes).
starting_program = '''\
import asyncio
import time


def crunch(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


async def ticker():
    for tick in range(6):
        started = time.perf_counter()
        await asyncio.sleep(0.05)
        print(f"tick {tick}: {(time.perf_counter() - started) * 1000:.0f} ms (asked for 50)")


async def main():
    ticks = asyncio.create_task(ticker())
    await asyncio.sleep(0.06)
    crunch(500_000)  # on the loop: the ticker cannot run until it ends
    await asyncio.to_thread(crunch, 500_000)  # in a thread: the loop runs, sharing the GIL
    await ticks


asyncio.run(main())
'''
