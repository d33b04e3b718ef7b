"""Concurrency is not parallelism: which kind of work gets faster with threads, and which needs processes.

The run does one job per worker, twice. First one worker does all the jobs
one after another: the baseline. Then the same jobs go to the chosen workers:
`single` (one worker again), `threads` (one OS thread per job, all in one
process) or `processes` (one process per job). A `cpu` job hashes in a
pure-Python loop, holding the GIL; a `hash` job runs `hashlib.pbkdf2_hmac`,
C code that releases the GIL; both are sized to JOB_CPU_S of CPU time,
measured in this process before the run, and cut into PIECES_PER_JOB pieces
that the workers take from one shared queue as they become free, the way a
process pool hands out tasks: a worker that lands on a slower core (two
virtual cores are not always two whole cores) takes fewer pieces rather than
keeping the others waiting. An `io` job, one piece, sleeps 200 ms, as a wait
on a database would.

Both phases are timed the same way: every phase runs in fresh child processes
(sandbox.py beside this module), started, imported and reporting ready before
the clock starts; the clock runs from the first piece starting to the last
piece ending. While it runs, this process only waits: the timeline's events
of the phase are sent once it is over (at the times they happened), so
neither start-up, nor this process relaying events, nor the host worker's own
threads blur the comparison.

A reader should see `cpu` jobs finish sooner on processes, up to the number
of cores, but not on threads (on a standard build the threads take turns on
the GIL, and `cores_busy` stays near 1); `hash` jobs speed up on threads too,
since the GIL is released while OpenSSL computes; waiting jobs overlap on
threads just fine. The speedup is measured against the baseline of the same
run, on the same machine; `cores_busy` (the workers' CPU seconds over the wall
seconds) stands beside it, and a result the machine's own load explains is
called noise (demos.cpu_turns).
"""
import json
import os
import queue
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from demos import cpu_turns
from demos.params import ChoiceParam, IntParam

slug = "parallelism"
title = "Threads, processes and the GIL"
concept = "Waiting overlaps on threads; computing only goes faster on more cores, which in standard CPython means processes."
placement = "worker"  # burns CPU and starts processes
burns_cpu = True  # one reader's runs take turns: two of them at once would share the cores they measure
time_limit_s = 40.0
lanes = "worker"
lane_states = frozenset({"blocked", "running", "done"})
headline = ("speedup", "total_ms", "baseline_ms")
summary_fields = {
    "total_ms": ("Time on the workers", "ms"), "baseline_ms": ("Time one after another", "ms"), "speedup": ("Speedup", "×"),
    "cpu_count": ("Cores available", ""), "python_build": ("Python build", ""),
    "startup_ms": ("Starting the workers", "ms"), "pieces": ("Pieces of work", ""),
}
waits = "none for cpu jobs (CPU work); time.sleep standing in for I/O for io jobs"
params = (
    ChoiceParam("work", "cpu", ("cpu", "hash", "io"), label="Work",
                help="cpu: each job hashes in a Python loop (holding the GIL) for about 400 ms of CPU; "
                     "hash: each job runs hashlib.pbkdf2_hmac (C, GIL released) for as long; io: each job waits 200 ms."),
    ChoiceParam("mode", "processes", ("single", "threads", "processes"), label="Workers are",
                help="single: one worker does every job in turn; threads: one thread per job; processes: one process per job."),
    IntParam("workers", 2, 1, 8, label="Workers (= jobs)",
             help="How many jobs to do, and how many workers share them (single mode uses one)."),
)
smoke_params = {"work": "io", "workers": 2}

WORKER_SCRIPT = Path(__file__).with_name("sandbox.py")
SAMPLE_EVERY_S = 0.1
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")
# CPU time per job. Jobs of 200 ms let one scheduler hiccup of another process
# (tens of ms on a shared machine) move a two-job speedup by a tenth or more;
# at 400 ms the same hiccup costs half as much, and 8 workers still finish well
# inside the time limit.
JOB_CPU_S = 0.4
# A cpu or hash job is cut into this many pieces (50 ms of CPU each at 400 ms a job). Handing out one
# whole job per worker made the speedup the slowest worker's luck: on a virtual machine one of two
# vCPUs was measured 20-45 % slower than the other in some runs, and the fast one then sat idle.
PIECES_PER_JOB = 8
CALIBRATE_CPU_S = 0.05  # how long sizing the jobs may compute, in CPU time

# (lane, what happened, perf_counter time, /proc stat path of the thread on "ready" |
#  (CPU seconds, pieces taken) on "finished")
Report = tuple[int, str, float, str | tuple[float, int] | None]


def pieces_per_job(work: str) -> int:
    return 1 if work == "io" else PIECES_PER_JOB


def rounds_for(work: str, cpu_s: float = JOB_CPU_S) -> int:
    """How many rounds of `work` take `cpu_s` of CPU time, measured here with time.thread_time.

    CPU time, not wall time: a busy machine slows the clock on the wall but not
    the count of instructions a round needs, so every phase does the same work.
    """
    if work == "io":
        return 1
    from demos.library.parallelism.sandbox import do_job

    rounds = 1_000
    while True:
        started = time.thread_time()
        do_job(work, rounds)
        used = time.thread_time() - started
        if used >= CALIBRATE_CPU_S:
            return max(1, round(rounds * cpu_s / used))
        rounds *= 4 if used < CALIBRATE_CPU_S / 8 else 2


@dataclass
class _Child:
    """One sandbox process and the thread that reads its reports."""

    process: subprocess.Popen[str]
    stdin: IO[str]
    forwarder: threading.Thread


class _Workers:
    """Child processes running sandbox.py beside this module; their reports arrive on `reports`.

    `pieces` bytes in a pipe are the phase's work: each child inherits the read end and takes a piece
    by reading a byte, so the pieces go to whichever worker is free first.
    """

    def __init__(self, work: str, rounds: int, pieces: int) -> None:
        self.work = work
        self.rounds = rounds
        self.reports: queue.Queue[Report] = queue.Queue()
        self.children: list[_Child] = []
        self.pieces_fd, write_end = os.pipe()
        try:
            os.write(write_end, b"p" * pieces)  # at most 8 x 8 bytes: far below a pipe's buffer
        finally:
            os.close(write_end)  # an empty pipe then reads as the end of the work

    def _forward(self, stdout: IO[str], lanes: range) -> None:
        with stdout:  # closed here, by its only reader
            for line in stdout:
                message = json.loads(line)
                extra: str | tuple[float, int] | None = None
                if message["what"] == "ready":
                    extra = f"/proc/{message['pid']}/task/{message['tid']}/stat"
                elif message["what"] == "finished":
                    extra = (float(message["cpu_s"]), int(message["pieces"]))
                self.reports.put((message["lane"], message["what"], message["when"], extra))
        for lane in lanes:
            self.reports.put((lane, "exited", time.perf_counter(), None))

    def start(self, first_lane: int, threads: int) -> None:
        """One process with `threads` threads (lanes from `first_lane`), all taking pieces from the pipe."""
        process = subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT), self.work, str(first_lane), "--rounds", str(self.rounds),
             "--threads", str(threads), "--queue-fd", str(self.pieces_fd), "--max-seconds", str(int(time_limit_s))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            pass_fds=(self.pieces_fd,),
        )
        stdin, stdout = process.stdin, process.stdout
        assert stdin is not None and stdout is not None  # PIPE was asked for both
        forwarder = threading.Thread(target=self._forward, args=(stdout, range(first_lane, first_lane + threads)),
                                     name=f"parallelism-{first_lane}-output", daemon=True)
        self.children.append(_Child(process, stdin, forwarder))
        forwarder.start()

    def release(self) -> None:
        for child in self.children:
            child.stdin.write("go\n")
            child.stdin.flush()

    def close(self) -> None:
        os.close(self.pieces_fd)
        for child in self.children:
            if child.process.poll() is None:
                child.process.kill()
            child.process.wait(timeout=5)
            child.stdin.close()
            child.forwarder.join(timeout=2)


def _cpu_ticks(path: str) -> int | None:
    """utime + stime of one task or process, from /proc, in clock ticks (None once it has gone)."""
    try:
        with open(path) as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def _count_of(count: int, noun: str) -> str:
    if count == 1:
        return f"1 {noun}"
    return f"{count} {noun}es" if noun.endswith("ss") else f"{count} {noun}s"


def _python_build() -> str:
    gil_enabled = getattr(sys, "_is_gil_enabled", None)
    if gil_enabled is None:
        return "GIL"
    return "GIL" if gil_enabled() else "free-threaded"


class _Phase:
    """One timed batch of pieces on some workers; its timeline is held while it is timed, then sent."""

    def __init__(self, emit, clock) -> None:
        self._emit = emit
        self.clock = clock  # perf_counter seconds -> run time in ms
        self.holding = False
        self.held: list[tuple[str, dict]] = []
        self.cpu_paths: dict[int, str] = {}
        self.cpu_seen: dict[str, int] = {}
        self.jobs_cpu_s = 0.0  # what the worker threads themselves reported using on their pieces
        self.pieces: dict[int, int] = {}  # lane -> pieces it took
        self.finished_lanes: set[int] = set()
        self.first_start: float | None = None
        self.last_end: float | None = None

    def emit(self, kind: str, **fields) -> None:
        """Emit now, or, while the phase is timed, keep it (with its time) for `send_held`."""
        if self.holding:
            self.held.append((kind, {"t": self._emit.elapsed_ms(), **fields}))
        else:
            self._emit(kind, **fields)

    def send_held(self) -> None:
        self.holding = False
        for kind, fields in self.held:
            self._emit(kind, **fields)
        self.held.clear()

    def handle(self, report: Report) -> str:
        lane, what, when, extra = report
        if what == "ready":
            assert isinstance(extra, str)  # every ready report names its thread
            self.cpu_paths[lane] = extra
            self.emit("state", lane=lane, state="blocked", label="ready, waiting for the start", t=self.clock(when))
        elif what == "running":
            self.first_start = when if self.first_start is None else min(self.first_start, when)
            self.emit("state", lane=lane, state="running", t=self.clock(when))
        elif what == "finished":
            assert isinstance(extra, tuple)  # every finished report says what CPU its thread used, on how many pieces
            cpu_s, pieces = extra
            self.jobs_cpu_s += cpu_s
            self.pieces[lane] = pieces
            if pieces:
                self.last_end = when if self.last_end is None else max(self.last_end, when)
            self.finished_lanes.add(lane)
            label = f"took {_count_of(pieces, 'piece')}" if pieces else "found no piece left"
            self.emit("state", lane=lane, state="done", label=label, t=self.clock(when))
        return what

    def cpu_seconds(self) -> float:
        for path in self.cpu_paths.values():
            ticks = _cpu_ticks(path)
            if ticks is not None:
                self.cpu_seen[path] = ticks  # a task that has exited keeps its last reading
        return sum(self.cpu_seen.values()) / CLOCK_TICKS_PER_S

    def cores_busy(self) -> float:
        """The workers' CPU seconds over the phase's wall seconds: how many cores they kept busy on average."""
        span_s = self.span_ms() / 1000
        return self.jobs_cpu_s / span_s if span_s > 0 else 0.0

    def span_ms(self) -> float:
        """From the first piece starting to the last piece ending, in ms."""
        if self.first_start is None or self.last_end is None:
            raise RuntimeError("no piece of work ran in this phase")
        return (self.last_end - self.first_start) * 1000


def _run_phase(phase: _Phase, workers: _Workers, lane_count: int, emit) -> float:
    """Wait until every lane is ready, release them together, wait until all finish, then stream the phase.

    Returns how long starting the processes took, in ms: kept out of the timed part.
    """
    starting = time.perf_counter()
    ready = finished = 0
    startup_ms = None
    last_sample: tuple[float, float] | None = None  # (CPU seconds used, when read), once the workers are released
    deadline = starting + time_limit_s - 5
    while finished < lane_count:
        emit.check_cancelled()
        if time.perf_counter() > deadline:
            raise RuntimeError(f"the workers did not finish in time ({finished} of {lane_count} done)")
        try:
            report = workers.reports.get(timeout=SAMPLE_EVERY_S / 2)
        except queue.Empty:
            report = None
        if report is not None:
            what = phase.handle(report)
            if what == "exited" and report[0] not in phase.finished_lanes:
                raise RuntimeError(f"worker {report[0]} exited before finishing its jobs")
            ready += what == "ready"
            finished += what == "finished"
            if ready == lane_count and startup_ms is None:
                startup_ms = (time.perf_counter() - starting) * 1000
                last_sample = phase.cpu_seconds(), time.perf_counter()
                phase.holding = True  # from here to the last piece, this process only waits and samples
                workers.release()
        now = time.perf_counter()
        if last_sample is not None and now - last_sample[1] >= SAMPLE_EVERY_S:
            last_cpu, sampled_at = last_sample
            cpu = phase.cpu_seconds()
            phase.emit("metric", name="cores_busy", value=round((cpu - last_cpu) / (now - sampled_at), 2), unit="cores",
                       t=phase.clock(now))
            last_sample = cpu, now
    phase.send_held()
    return startup_ms or 0.0


def _measure(phase: _Phase, work: str, rounds: int, pieces: int, starts: list[tuple[int, int]], emit) -> float:
    """Run one phase of `pieces` pieces on fresh processes, each given as (first lane, threads)."""
    workers = _Workers(work, rounds, pieces)
    try:
        for first_lane, threads in starts:
            workers.start(first_lane, threads)
        return _run_phase(phase, workers, sum(threads for _, threads in starts), emit)
    finally:
        workers.close()


def run(params, emit):
    """Time the jobs on one worker, then on the chosen workers; the summary is the speedup and what it means."""
    load_before = cpu_turns.host_conditions()  # before this run's own work adds to the load
    work, mode, jobs = params["work"], params["mode"], params["workers"]
    noun = {"single": "worker", "threads": "thread", "processes": "process"}[mode]
    lane_count = 1 if mode == "single" else jobs  # lane 0 is the baseline, lanes 1.. the chosen workers
    labels = [f"baseline: 1 worker, {_count_of(jobs, 'job')} in turn"]
    labels += [f"{noun} {lane}" for lane in range(1, 1 + lane_count)]
    emit("lanes", count=1 + lane_count, labels=labels)
    aligned_t = emit("log", text=f"Baseline: one process does the {_count_of(jobs, work + ' job')} one after another.")
    aligned_at = time.perf_counter()

    def clock(when: float) -> float:
        return aligned_t + (when - aligned_at) * 1000

    per_job = pieces_per_job(work)
    pieces = jobs * per_job
    rounds = rounds_for(work, JOB_CPU_S / per_job)
    baseline = _Phase(emit, clock)
    _measure(baseline, work, rounds, pieces, [(0, 1)], emit)
    baseline_ms = baseline.span_ms()

    emit("log", text=f"Now the same {_count_of(jobs, 'job')} go to {_count_of(lane_count, noun)}.")
    chosen = _Phase(emit, clock)
    if mode == "single":
        starts = [(1, 1)]
    elif mode == "threads":
        starts = [(1, jobs)]
    else:
        starts = [(1 + index, 1) for index in range(jobs)]
    startup_ms = _measure(chosen, work, rounds, pieces, starts, emit)

    total_ms = chosen.span_ms()
    speedup = baseline_ms / total_ms
    host = cpu_turns.host_conditions()
    host["load_before"] = load_before["load_before"]
    cpu_count = host["cores"]
    cores_busy = chosen.cores_busy()
    build = _python_build()
    text = (f"{_count_of(jobs, work + ' job')} took {baseline_ms:.0f} ms one after another and "
            f"{total_ms:.0f} ms on {_count_of(lane_count, noun)}: a speedup of {speedup:.2f}× with "
            f"{_count_of(cpu_count, 'core')} available ({build} build)")
    computes = work != "io"
    if computes:
        text += f", the workers keeping {cores_busy:.2f} cores busy (1 job alone: {baseline.cores_busy():.2f})"
    in_parallel = lane_count > 1 and (mode == "processes" or work == "hash" or build == "free-threaded")
    noise = cpu_turns.speedup_noise(
        speedup=speedup, cores_busy=cores_busy, baseline_cores_busy=baseline.cores_busy(), conditions=host,
        expected_speedup=min(lane_count, cpu_count) if in_parallel else 1.0,
        cpu_inflation=chosen.jobs_cpu_s / baseline.jobs_cpu_s if in_parallel and baseline.jobs_cpu_s > 0 else None,
    ) if computes else None
    text += f". But {noise}." if noise else "."
    if per_job > 1 and lane_count > 1:
        shares = " + ".join(str(chosen.pieces.get(lane, 0)) for lane in range(1, 1 + lane_count))
        text += (f" The work was cut into {pieces} pieces that the {noun}{'es' if noun.endswith('ss') else 's'} took "
                 f"as they became free ({shares}).")
    text += (f" Both times run from the first piece starting to the last one ending; starting the worker "
             f"process{'es' if len(starts) > 1 else ''} took another {startup_ms:.0f} ms, not counted.")
    return {
        "total_ms": round(total_ms, 1),
        "baseline_ms": round(baseline_ms, 1),
        "speedup": round(speedup, 2),
        "cores_busy": round(cores_busy, 2),
        "baseline_cores_busy": round(baseline.cores_busy(), 2),
        "cpu_count": cpu_count,
        "load_before": host["load_before"],
        "cores": cpu_count,
        "noise": noise is not None,
        "python_build": build,
        "startup_ms": round(startup_ms, 1),
        "job_cpu_ms": round(JOB_CPU_S * 1000) if computes else 0,
        "pieces": pieces,
        "text": text,
    }


# "Edit and run" opens this program: the idea above in a few lines of standard-library Python that a
# reader can change and run (the sandbox has no network and no database: timers, threads, processes).
starting_program = '''\
import time
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor


def compute(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


def wait(seconds):
    time.sleep(seconds)


if __name__ == "__main__":
    for label, pool_class, job, argument in [
        ("4 waits on 4 threads", ThreadPoolExecutor, wait, 0.2),
        ("4 computations on 4 threads", ThreadPoolExecutor, compute, 200_000),
        ("4 computations on 4 processes", ProcessPoolExecutor, compute, 200_000),
    ]:
        started = time.perf_counter()
        with pool_class(max_workers=4) as pool:
            list(pool.map(job, [argument] * 4))
        print(f"{label}: {time.perf_counter() - started:.2f} s")
'''
