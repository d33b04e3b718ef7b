"""Concurrency is not parallelism: which kind of work gets faster with threads, and which needs processes.

The run does one job per worker on two sides. On one side, one worker does all
the jobs one after another: the baseline. On the other, the same jobs go to
the chosen workers: `single` (one worker again), `threads` (one OS thread per
job, all in one process) or `processes` (one process per job). A `cpu` job
hashes in a pure-Python loop, holding the GIL; a `hash` job runs
`hashlib.pbkdf2_hmac`, C code that releases the GIL; both are sized to
JOB_CPU_S of CPU time, measured in this process before the run. An `io` job
sleeps 200 ms, as a wait on a database would.

Computing jobs are done in ROUNDS rounds, the two sides taking turns (A B,
then B A, and so on), each round a slice of every job on each side. Timing all
of one side and then all of the other let a slow spell of the host (a virtual
core losing speed to another tenant for a second) land on one side only and
move the ratio either way; a round compares two stretches a moment apart, and
the speedup is the median of the rounds' own, with their range beside it.
The host can still change the cores' speed between the two stretches of a
round (other tenants of the machine); that shows as the same pieces costing
one side more CPU time than the other, so such a round is set aside, shown but
not counted, and another round is run in its place, up to MAX_ROUNDS. A
round's slice is cut into PIECES_PER_JOB pieces per job that the workers take
from one shared queue as they become free, the way a process pool hands out
tasks: a worker on a slower core takes fewer pieces rather than keeping the
others waiting. Waiting is not slowed by a busy core, so `io` jobs run once.

Both sides are timed the same way, in child processes (sandbox.py beside this
module) started, imported and reporting ready before any clock starts, and
kept for every round; a stretch runs from its first piece starting to its
last piece ending. While one is timed this process only waits: its timeline
events are sent once it is over (at the times they happened), so neither
start-up, nor this process relaying events, nor the host worker's own threads
blur the comparison.

A reader should see `cpu` jobs finish sooner on processes, up to the number
of cores, but not on threads (on a standard build the threads take turns on
the GIL, and `cores_busy` stays near 1); `hash` jobs speed up on threads too,
since the GIL is released while OpenSSL computes; waiting jobs overlap on
threads just fine. `cores_busy` (the workers' CPU seconds over their wall
seconds) stands beside the speedup, and a result the machine explains is
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
headline = ("speedup", "cores_busy", "cpu_count")
summary_fields = {
    "speedup": ("Speedup (median of the rounds)", "×"), "cores_busy": ("Cores kept busy", "cores"),
    "cpu_count": ("Cores available", ""), "round_speedups": ("Speedup in each round", "×"),
    "rounds": ("Rounds on each side", ""), "total_ms": ("Time on the workers, all rounds", "ms"),
    "baseline_ms": ("Time one after another, all rounds", "ms"),
    "baseline_cores_busy": ("Cores kept busy by one worker", "cores"),
    "cpu_inflation": ("CPU time side by side ÷ one after another", "×"), "load_before": ("Load average before", ""),
    "python_build": ("Python build", ""), "startup_ms": ("Starting the workers", "ms"),
    "pieces": ("Pieces of work in a round", ""),
    "rounds_counted": ("Rounds counted (the same CPU time on both sides)", ""),
    "rounds_set_aside": ("Rounds set aside (the cores changed speed)", ""),
    "round_cpu_ratios": ("CPU time side by side ÷ one after another, each round", "×"),
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
# CPU time per job, over the whole run. A job is done in ROUNDS slices, so one phase of a round is short;
# what makes the result steady is the pairing below, not the length of one stretch of work.
JOB_CPU_S = 0.4
# The baseline and the chosen workers take turns, ROUNDS times each, in the order A B B A A B ...: on this
# kind of virtual machine a core can slow down for a second or so because of another tenant of the host,
# and timing all of the baseline and then all of the workers let one such spell move the ratio either way
# (2.59x and 1.41x in one sitting on two idle vCPUs). Each round's ratio compares two stretches a fraction
# of a second apart, and the median of the rounds leaves a round that a spell fell into to the side.
ROUNDS = 5
# The same pieces cost the same CPU time on any core running at the same speed. On this kind of virtual
# machine the host changes that speed by itself, from one tenth of a second to the next (the same fixed
# loop took from 0.8 to 1.9 ms in 50 ms windows on an idle guest); in a round where one side's pieces cost
# more than this fraction more or less CPU time than the other's, the two stretches ran on different
# machines, as it were, and their ratio says more about the host than about the workers (rounds at 1.0x
# with the same work costing 2.0x the CPU side by side, at 1.9x where it cost the same; 2026-12-02).
SAME_SPEED_TOLERANCE = 0.10
# A round set aside is run again, so that ROUNDS rounds are counted, until MAX_ROUNDS have run or the run
# has taken EXTRA_ROUNDS_UNTIL_S. With fewer than MIN_COUNTED_ROUNDS counted, the result is noise.
MAX_ROUNDS = 15
MIN_COUNTED_ROUNDS = 3
EXTRA_ROUNDS_UNTIL_S = 15.0
# Each job's slice of a round is cut into this many pieces (5 ms of CPU each at the defaults) that the
# workers take as they become free, the way a process pool hands out tasks: when one vCPU runs slower than
# the other, the fast worker takes more pieces instead of waiting, and the two finish at most a small
# piece apart.
PIECES_PER_JOB = 16
CALIBRATE_CPU_S = 0.05  # how long sizing the jobs may compute, in CPU time

# (lane, what happened, perf_counter time, /proc stat path of the thread on "ready" |
#  (stretch, CPU seconds, pieces taken) on "finished" | stretch on "running")
Report = tuple[int, str, float, str | tuple[int, float, int] | int | None]


def pieces_per_job(work: str) -> int:
    return 1 if work == "io" else PIECES_PER_JOB


def rounds_of(work: str) -> int:
    """How many rounds the baseline and the chosen workers take turns for, set-aside rounds included, at most.

    Waiting is not slowed by a busy core, so `io` jobs run once.
    """
    return 1 if work == "io" else MAX_ROUNDS


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

    For each of `stretches` stretches of work, `pieces` bytes in a pipe of its own: each child inherits
    the read ends and takes a piece by reading a byte, so the pieces go to whichever worker is free first.
    """

    def __init__(self, work: str, rounds: int, pieces: int, stretches: int, reports: queue.Queue[Report]) -> None:
        self.work = work
        self.rounds = rounds
        self.reports = reports
        self.children: list[_Child] = []
        self.pieces_fds: list[int] = []
        try:
            for _ in range(stretches):
                read_end, write_end = os.pipe()
                self.pieces_fds.append(read_end)
                try:
                    os.write(write_end, b"p" * pieces)  # at most 8 x 16 bytes: far below a pipe's buffer
                finally:
                    os.close(write_end)  # an empty pipe then reads as the end of the stretch
        except BaseException:
            self._close_pipes()
            raise

    def _close_pipes(self) -> None:
        for fd in self.pieces_fds:
            os.close(fd)
        self.pieces_fds.clear()

    def _forward(self, stdout: IO[str], lanes: range) -> None:
        with stdout:  # closed here, by its only reader
            for line in stdout:
                message = json.loads(line)
                extra: str | tuple[int, float, int] | int | None = None
                if message["what"] == "ready":
                    extra = f"/proc/{message['pid']}/task/{message['tid']}/stat"
                elif message["what"] == "running":
                    extra = int(message["stretch"])
                elif message["what"] == "finished":
                    extra = (int(message["stretch"]), float(message["cpu_s"]), int(message["pieces"]))
                self.reports.put((message["lane"], message["what"], message["when"], extra))
        for lane in lanes:
            self.reports.put((lane, "exited", time.perf_counter(), None))

    def start(self, first_lane: int, threads: int) -> None:
        """One process with `threads` threads (lanes from `first_lane`), all taking pieces from the pipes."""
        queue_args = [argument for fd in self.pieces_fds for argument in ("--queue-fd", str(fd))]
        process = subprocess.Popen(
            [sys.executable, str(WORKER_SCRIPT), self.work, str(first_lane), "--rounds", str(self.rounds),
             "--threads", str(threads), *queue_args, "--max-seconds", str(int(time_limit_s))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
            pass_fds=tuple(self.pieces_fds),
        )
        stdin, stdout = process.stdin, process.stdout
        assert stdin is not None and stdout is not None  # PIPE was asked for both
        forwarder = threading.Thread(target=self._forward, args=(stdout, range(first_lane, first_lane + threads)),
                                     name=f"parallelism-{first_lane}-output", daemon=True)
        self.children.append(_Child(process, stdin, forwarder))
        forwarder.start()

    def release(self) -> None:
        """The start signal of the next stretch, to every child."""
        for child in self.children:
            child.stdin.write("go\n")
            child.stdin.flush()

    def close(self) -> None:
        self._close_pipes()
        for child in self.children:
            if child.process.poll() is None:
                child.process.kill()
            child.process.wait(timeout=5)
            try:
                child.stdin.close()
            except OSError:  # a killed child's pipe may refuse the last flush
                pass
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


def _median(values: list[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


@dataclass
class _Stretch:
    """One timed stretch of one side: from its first piece starting to its last piece ending."""

    first_start: float | None = None
    last_end: float | None = None
    cpu_s: float = 0.0  # what the worker threads reported using on this stretch's pieces
    ran: bool = False  # whether its start signal was given

    def span_ms(self) -> float:
        if self.first_start is None or self.last_end is None:
            raise RuntimeError("no piece of work ran in this stretch")
        return (self.last_end - self.first_start) * 1000


class _Held:
    """Timeline events kept, with their times, from the start of a round until it is over, then sent in order.

    Nothing is sent while a stretch is timed, so this process stays quiet; and only once a round is over is
    it known whether another follows, so whether each lane's last state is "waiting" or "done".
    """

    def __init__(self, emit) -> None:
        self._emit = emit
        self.holding = False
        self.events: list[tuple[str, dict]] = []

    def add(self, kind: str, fields: dict) -> dict:
        if not self.holding:
            self._emit(kind, **fields)
            return fields
        fields = {"t": self._emit.elapsed_ms(), **fields}
        self.events.append((kind, fields))
        return fields  # the caller may still change it before it is sent

    def send(self) -> None:
        self.holding = False
        for kind, fields in self.events:
            self._emit(kind, **fields)
        self.events.clear()


class _Side:
    """One side of the comparison (the baseline, or the chosen workers): its lanes, stretches and events."""

    def __init__(self, held: _Held, clock, lanes: range, stretches: int) -> None:
        self.held = held
        self.clock = clock  # perf_counter seconds -> run time in ms
        self.lanes = lanes
        self.last_states: dict[int, dict] = {}  # lane -> the state it was last put in (a held event's fields)
        self.cpu_paths: dict[int, str] = {}
        self.cpu_seen: dict[str, int] = {}
        self.stretches = [_Stretch() for _ in range(stretches)]
        self.pieces: dict[int, int] = {}  # lane -> pieces it took, over every stretch
        self.finished: dict[int, int] = {}  # stretch -> lanes that have finished it
        self.lanes_through: set[int] = set()  # lanes that have finished their last stretch

    def emit(self, kind: str, **fields) -> dict:
        return self.held.add(kind, fields)

    def ran(self) -> list[_Stretch]:
        return [stretch for stretch in self.stretches if stretch.ran]

    def finish(self) -> None:
        """After the last round: each lane's last state, "waiting for its next turn", becomes "done"."""
        for lane, fields in self.last_states.items():
            total = self.pieces.get(lane, 0)
            fields.update(state="done", label=f"took {_count_of(total, 'piece')}" if total else "found no piece left")
            self.lanes_through.add(lane)

    def handle(self, report: Report) -> None:
        lane, what, when, extra = report
        if what == "ready":
            assert isinstance(extra, str)  # every ready report names its thread
            self.cpu_paths[lane] = extra
            self.emit("state", lane=lane, state="blocked", label="ready, waiting for the start", t=self.clock(when))
        elif what == "running":
            assert isinstance(extra, int)  # the stretch it began
            stretch = self.stretches[extra]
            stretch.first_start = when if stretch.first_start is None else min(stretch.first_start, when)
            label = f"round {extra + 1}" if len(self.stretches) > 1 else None
            self.emit("state", lane=lane, state="running", t=self.clock(when), **({"label": label} if label else {}))
        elif what == "finished":
            assert isinstance(extra, tuple)  # every finished report names its stretch, CPU time and pieces
            index, cpu_s, pieces = extra
            stretch = self.stretches[index]
            stretch.cpu_s += cpu_s
            self.pieces[lane] = self.pieces.get(lane, 0) + pieces
            if pieces:
                stretch.last_end = when if stretch.last_end is None else max(stretch.last_end, when)
            self.finished[index] = self.finished.get(index, 0) + 1
            if index + 1 == len(self.stretches):
                self.lanes_through.add(lane)  # its process may exit now, before the other side's stretch ends
            if len(self.stretches) > 1:
                took = f"took {_count_of(pieces, 'piece')}" if pieces else "found no piece left"
                self.last_states[lane] = self.emit("state", lane=lane, state="blocked", t=self.clock(when),
                                                   label=f"round {index + 1}: {took}; waiting for its next turn")
            else:
                self.lanes_through.add(lane)
                label = f"took {_count_of(pieces, 'piece')}" if pieces else "found no piece left"
                self.emit("state", lane=lane, state="done", label=label, t=self.clock(when))

    def cpu_seconds(self) -> float:
        for path in self.cpu_paths.values():
            ticks = _cpu_ticks(path)
            if ticks is not None:
                self.cpu_seen[path] = ticks  # a task that has exited keeps its last reading
        return sum(self.cpu_seen.values()) / CLOCK_TICKS_PER_S

    def span_ms(self) -> float:
        """Every stretch's span so far, added up, in ms."""
        return sum(stretch.span_ms() for stretch in self.ran())

    def jobs_cpu_s(self) -> float:
        return sum(stretch.cpu_s for stretch in self.ran())

    def cores_busy(self) -> float:
        """The workers' CPU seconds over their wall seconds, over every stretch: the cores they kept busy."""
        span_s = self.span_ms() / 1000
        return self.jobs_cpu_s() / span_s if span_s > 0 else 0.0


def _wait_for(reports: queue.Queue[Report], sides: dict[int, _Side], done, emit, deadline: float,
              sampling: _Side | None = None) -> None:
    """Hand reports to their sides until `done()`; while `sampling`, a cores_busy sample every SAMPLE_EVERY_S."""
    last_sample = (sampling.cpu_seconds(), time.perf_counter()) if sampling else None
    while not done():
        emit.check_cancelled()
        if time.perf_counter() > deadline:
            raise RuntimeError("the workers did not finish in time")
        try:
            report = reports.get(timeout=SAMPLE_EVERY_S / 2)
        except queue.Empty:
            report = None
        if report is not None:
            lane, what = report[0], report[1]
            side = sides[lane]
            if what == "exited":
                if lane not in side.lanes_through:
                    raise RuntimeError(f"worker {lane} exited before finishing its jobs")
            else:
                side.handle(report)
        now = time.perf_counter()
        if sampling is not None and last_sample is not None and now - last_sample[1] >= SAMPLE_EVERY_S:
            last_cpu, sampled_at = last_sample
            cpu = sampling.cpu_seconds()
            sampling.emit("metric", name="cores_busy", value=round((cpu - last_cpu) / (now - sampled_at), 2),
                          unit="cores", t=sampling.clock(now))
            last_sample = cpu, now


def _run_stretch(side: _Side, workers: _Workers, index: int, reports: queue.Queue[Report],
                 sides: dict[int, _Side], emit, deadline: float) -> None:
    """Release one side for stretch `index` and wait until every lane of it has finished that stretch."""
    side.held.holding = True  # from here to the round's end, this process only waits and samples
    side.stretches[index].ran = True
    workers.release()
    _wait_for(reports, sides, lambda: side.finished.get(index, 0) == len(side.lanes), emit, deadline, sampling=side)


def same_speed(baseline_cpu_s: float, chosen_cpu_s: float) -> bool:
    """Whether the same pieces cost both sides the same CPU time, within SAME_SPEED_TOLERANCE."""
    return baseline_cpu_s > 0 and abs(chosen_cpu_s / baseline_cpu_s - 1) <= SAME_SPEED_TOLERANCE


def run(params, emit):
    """Time the jobs on one worker and on the chosen workers, in alternating rounds; the summary is the speedup."""
    load_before = cpu_turns.host_conditions()  # before this run's own work adds to the load
    work, mode, jobs = params["work"], params["mode"], params["workers"]
    noun = {"single": "worker", "threads": "thread", "processes": "process"}[mode]
    lane_count = 1 if mode == "single" else jobs  # lane 0 is the baseline, lanes 1.. the chosen workers
    rounds = rounds_of(work)
    labels = [f"baseline: 1 worker, {_count_of(jobs, 'job')} in turn"]
    labels += [f"{noun} {lane}" for lane in range(1, 1 + lane_count)]
    emit("lanes", count=1 + lane_count, labels=labels)
    if rounds > 1:
        opening = (f"One process does the {_count_of(jobs, work + ' job')} one after another (the baseline), and "
                   f"{_count_of(lane_count, noun)} share{'s' if lane_count == 1 else ''} the same jobs; the two "
                   f"take turns, a slice of every job a round, until {ROUNDS} rounds have cost both sides the same "
                   f"CPU time (at most {rounds} rounds).")
    else:
        opening = (f"One process does the {_count_of(jobs, work + ' job')} one after another (the baseline), then "
                   f"{_count_of(lane_count, noun)} share{'s' if lane_count == 1 else ''} the same jobs.")
    aligned_t = emit("log", text=opening)
    aligned_at = time.perf_counter()

    def clock(when: float) -> float:
        return aligned_t + (when - aligned_at) * 1000

    per_job = pieces_per_job(work)
    pieces = jobs * per_job  # a round's pieces, on each side
    piece_rounds = rounds_for(work, JOB_CPU_S / ROUNDS / per_job) if work != "io" else 1
    if mode == "single":
        starts = [(1, 1)]
    elif mode == "threads":
        starts = [(1, jobs)]
    else:
        starts = [(1 + index, 1) for index in range(jobs)]
    held = _Held(emit)
    baseline = _Side(held, clock, range(0, 1), rounds)
    chosen = _Side(held, clock, range(1, 1 + lane_count), rounds)
    sides = {0: baseline, **{lane: chosen for lane in chosen.lanes}}
    reports: queue.Queue[Report] = queue.Queue()
    deadline = time.perf_counter() + time_limit_s - 5
    baseline_workers = _Workers(work, piece_rounds, pieces, rounds, reports)
    chosen_workers: _Workers | None = None
    try:
        chosen_workers = _Workers(work, piece_rounds, pieces, rounds, reports)
        starting = time.perf_counter()
        baseline_workers.start(0, 1)
        for first_lane, threads in starts:
            chosen_workers.start(first_lane, threads)
        _wait_for(reports, sides, lambda: len(baseline.cpu_paths) + len(chosen.cpu_paths) == 1 + lane_count,
                  emit, deadline)
        startup_ms = (time.perf_counter() - starting) * 1000
        extra_rounds_until = time.perf_counter() + EXTRA_ROUNDS_UNTIL_S
        counted = 0
        for index in range(rounds):
            order = ((baseline, baseline_workers), (chosen, chosen_workers))
            for side, workers in order if index % 2 == 0 else order[::-1]:  # A B, B A, A B, ...
                _run_stretch(side, workers, index, reports, sides, emit, deadline)
            counted += work == "io" or same_speed(baseline.stretches[index].cpu_s, chosen.stretches[index].cpu_s)
            last = (counted >= ROUNDS or index + 1 == rounds
                    or (index + 1 >= ROUNDS and time.perf_counter() > extra_rounds_until))
            if last:
                baseline.finish()
                chosen.finish()
            held.send()
            if last:
                break
    finally:
        baseline_workers.close()
        if chosen_workers is not None:
            chosen_workers.close()

    host = cpu_turns.host_conditions()
    host["load_before"] = load_before["load_before"]
    return summarise(
        work=work, noun=noun, jobs=jobs, lane_count=lane_count, host=host, build=_python_build(),
        baseline_ms=[stretch.span_ms() for stretch in baseline.ran()],
        chosen_ms=[stretch.span_ms() for stretch in chosen.ran()],
        baseline_cpu_s=[stretch.cpu_s for stretch in baseline.ran()],
        chosen_cpu_s=[stretch.cpu_s for stretch in chosen.ran()],
        shares=[chosen.pieces.get(lane, 0) for lane in chosen.lanes], pieces=pieces, startup_ms=startup_ms,
    )


def summarise(*, work: str, noun: str, jobs: int, lane_count: int, host: dict, build: str,
              baseline_ms: list[float], chosen_ms: list[float], baseline_cpu_s: list[float],
              chosen_cpu_s: list[float], shares: list[int], pieces: int, startup_ms: float) -> dict:
    """The summary of what was measured: per round, each side's span (ms) and CPU seconds; the pieces each
    chosen lane took; the host's conditions (`cpu_turns.host_conditions`, with the load from before the run).

    The speedup is the median of the counted rounds' own (baseline ÷ chosen of the same round), their range
    beside it: a round counts when the same pieces cost both sides the same CPU time (`same_speed`), and the
    others are set aside and named. `cores_busy` stands beside the speedup; noise is named in the lead
    sentence when the rules of cpu_turns say so or too few rounds counted, and a counted round above the
    cores is called noise even when the median stands.
    """
    rounds = len(baseline_ms)
    round_speedups = [a / b for a, b in zip(baseline_ms, chosen_ms, strict=True)]
    computes = work != "io"
    counted_rounds = [index for index in range(rounds)
                      if not computes or same_speed(baseline_cpu_s[index], chosen_cpu_s[index])]
    enough_counted = len(counted_rounds) >= min(MIN_COUNTED_ROUNDS, rounds)
    basis = counted_rounds if enough_counted else list(range(rounds))  # the rounds the headline comes from
    set_aside = [index for index in range(rounds) if index not in counted_rounds]
    speedup = _median([round_speedups[index] for index in basis])
    low, high = min(round_speedups[index] for index in basis), max(round_speedups[index] for index in basis)
    cpu_count = host["cores"]
    cores_busy = sum(chosen_cpu_s[index] for index in basis) / (sum(chosen_ms[index] for index in basis) / 1000)
    baseline_cores_busy = (sum(baseline_cpu_s[index] for index in basis)
                           / (sum(baseline_ms[index] for index in basis) / 1000))
    in_parallel = lane_count > 1 and (noun == "process" or work == "hash" or build == "free-threaded")
    cpu_ratios = [chosen / baseline if baseline > 0 else None
                  for baseline, chosen in zip(baseline_cpu_s, chosen_cpu_s, strict=True)]
    cpu_inflation = None
    basis_ratios = [ratio for index in basis if (ratio := cpu_ratios[index]) is not None]
    if computes and in_parallel and len(basis_ratios) == len(basis):
        cpu_inflation = _median(basis_ratios)
    # A median above the cores is named as that first (cpu_turns says it), even when too few rounds counted too.
    if computes and not enough_counted and speedup <= cpu_count * 1.02:
        noise: str | None = (
            f"in only {_count_of(len(counted_rounds), 'round')} of {rounds} did the same work cost both sides the "
            f"same CPU time (within {SAME_SPEED_TOLERANCE:.0%}), so the host kept changing the cores' speed: "
            "this result is noise from the machine, not a finding")
    else:
        noise = cpu_turns.speedup_noise(
            speedup=speedup, cores_busy=cores_busy, baseline_cores_busy=baseline_cores_busy, conditions=host,
            expected_speedup=min(lane_count, cpu_count) if in_parallel else 1.0, cpu_inflation=cpu_inflation,
            round_speedups=[round_speedups[index] for index in basis],
        ) if computes else None
    workers_noun = f"{noun}{'es' if noun.endswith('ss') else 's'}"
    # The lead sentence: the speedup, the cores it had, and (in the same sentence) noise when it is noise.
    text = (f"{_count_of(jobs, work + ' job')} ran {speedup:.2f}× as fast on {_count_of(lane_count, noun)} as on "
            f"one worker")
    if computes:
        text += f", the workers keeping {cores_busy:.2f} cores busy of the {cpu_count} available"
    else:
        text += f", with {_count_of(cpu_count, 'core')} available"
    text += f", but {noise}." if noise else "."
    if rounds > 1 and not set_aside:
        text += (f" The two took turns, {rounds} rounds each (one worker, then the {workers_noun}, then the other way "
                 f"round), and the speedup is the median of the {rounds} rounds' own, which ranged from "
                 f"{low:.2f}× to {high:.2f}×.")
    elif rounds > 1:
        ratios = sorted(ratio for index in set_aside if (ratio := cpu_ratios[index]) is not None)
        took = (f"{ratios[0]:.2f}×" if len(ratios) == 1 or ratios[0] == ratios[-1]
                else f"from {ratios[0]:.2f}× to {ratios[-1]:.2f}×")
        aside_speedups = [round_speedups[index] for index in set_aside]
        text += (f" The two took turns, {rounds} rounds each (one worker, then the {workers_noun}, then the other way "
                 f"round). In {len(counted_rounds)} of them the same work cost both sides the same CPU time, within "
                 f"{SAME_SPEED_TOLERANCE:.0%}")
        if enough_counted:
            text += (f", and the speedup is the median of those {len(counted_rounds)} rounds' own, which ranged from "
                     f"{low:.2f}× to {high:.2f}×.")
        else:
            text += f"; too few to count, so the speedup above is the median of all {rounds}, from {low:.2f}× to {high:.2f}×."
        text += (f" {'The round' if len(set_aside) == 1 else 'The ' + str(len(set_aside)) + ' rounds'} set aside "
                 f"({', '.join(str(index + 1) for index in set_aside)}) came out at "
                 f"{', '.join(f'{ratio:.2f}×' for ratio in aside_speedups)}: in "
                 f"{'it' if len(set_aside) == 1 else 'them'} the same work took {took} the CPU time side "
                 "by side that it took one after another, so the host changed the cores' speed between the two "
                 "stretches, and such a ratio measures the host rather than the workers.")
    if rounds > 1:
        over_cores = [round_speedups[index] for index in basis if round_speedups[index] > cpu_count * 1.02]
        if over_cores and noise is None:
            one = len(over_cores) == 1
            text += (f" {'A round' if one else 'Rounds'} above {cpu_count}× cannot come from "
                     f"{_count_of(cpu_count, 'core')}: the machine slowed {'that round' if one else 'those rounds'}' "
                     f"baseline, which is noise, and the median leaves {'it' if one else 'them'} aside.")
    text += (f" In all, the jobs took {sum(baseline_ms):.0f} ms one after another and {sum(chosen_ms):.0f} ms on "
             f"the {workers_noun}")
    text += f"; one job alone kept {baseline_cores_busy:.2f} of a core busy." if computes else "."
    text += f" Python: {build} build."
    if pieces > jobs and lane_count > 1:
        text += (f" Each round's work was cut into {pieces} pieces that the {workers_noun} took as they became "
                 f"free ({' + '.join(map(str, shares))} over the rounds).")
    text += (" Every time runs from the first piece starting to the last one ending; starting the worker "
             f"processes took another {startup_ms:.0f} ms, not counted.")
    return {
        "total_ms": round(sum(chosen_ms), 1),
        "baseline_ms": round(sum(baseline_ms), 1),
        "speedup": round(speedup, 2),
        "round_speedups": [round(ratio, 2) for ratio in round_speedups],
        "rounds": rounds,
        "rounds_counted": len(counted_rounds),
        "rounds_set_aside": [index + 1 for index in set_aside],
        "round_cpu_ratios": [round(ratio, 2) if ratio is not None else None for ratio in cpu_ratios],
        "cores_busy": round(cores_busy, 2),
        "baseline_cores_busy": round(baseline_cores_busy, 2),
        "cpu_inflation": round(cpu_inflation, 2) if cpu_inflation is not None else None,
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
