"""Offloading CPU work: the same heavy job inside a request, or on a Celery worker.

The demo starts a sandbox web server (demos/library/offload/server.py: a real
HTTP server on loopback, in a process of its own, answering one request at a
time like one web worker). A probe client calls its cheap `/ping` every 20 ms
for the whole run: first for a second with nothing else going on, to learn
what an idle server's latency looks like, then while `jobs` CPU-bound jobs of
about `job_ms` each (PBKDF2 hashing) are submitted at once:

- `inline`: `POST /jobs/inline` hashes inside the request, so every ping that
  arrives meanwhile waits for the jobs ahead of it;
- `celery`: `POST /jobs/celery` puts the job on the `offload-jobs` queue and
  answers 202 straight away; separate worker processes do the hashing.

A reader should see the ping latency climb to about the sum of the queued jobs
in `inline` mode and stay near its idle level in `celery` mode, each job's lane
go queued, running (labelled with the process that ran it) and done, two jobs
running side by side when two worker processes are free, and the queue depth
while jobs wait. With `failure` set, the first job goes wrong on purpose
(raises, outruns its time limit, or kills its worker process) and the run ends
as failed, saying what happened.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
import uuid
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from coursesite.redis_clients import async_redis, close_async_redis
from demos import cpu_turns, stats
from demos.base import JobQueue
from demos.library.offload.tasks import FAILURES, JOBS_QUEUE, STEPS, open_key, reports_key, starts_key, time_limits
from demos.params import ChoiceParam, IntParam, ParamError

slug = "offload"
title = "Offloading CPU work to a job queue"
concept = ("CPU-heavy work done inside a request holds up every request behind it; handed to Celery workers, "
           "the web tier keeps answering quickly.")
placement = "worker"  # starts a server process and burns CPU
burns_cpu = True  # its jobs hash: one reader's runs take turns
time_limit_s = 60.0
lanes = "job"
lane_states = frozenset({"queued", "running", "done", "failed"})
headline = ("probe_tail_ms", "idle_probe_tail_ms", "job_answer_ms_max")
summary_fields = {
    "probe_p50_ms": ("/ping median while the jobs ran", "ms"),
    "probe_tail_ms": ("/ping tail while the jobs ran (p99, or the max under 100 pings)", "ms"),
    "probe_max_ms": ("/ping slowest while the jobs ran", "ms"), "idle_probe_p50_ms": ("/ping median when idle", "ms"),
    "idle_probe_tail_ms": ("/ping tail when idle (p99, or the max under 100 pings)", "ms"),
    "probe_tail": ("Which tail the busy figure is", ""), "idle_probe_tail": ("Which tail the idle figure is", ""),
    "probes": ("Pings timed", ""),
    "probe_errors": ("Pings unanswered", ""), "probes_skipped": ("Pings skipped", ""), "jobs_done": ("Jobs done", ""),
    "job_ms_p50": ("Median job, wall time", "ms"), "job_cpu_ms_p50": ("Median job, CPU time", "ms"),
    "job_answer_ms_max": ("Slowest answer to a job's request", "ms"), "queue_depth_max": ("Most jobs queued", ""),
    "workers_used": ("Worker processes used", ""), "jobs_parallel_max": ("Most jobs running at once", ""),
    "work_ms": ("Time until the jobs were done", "ms"),
}
waits = "real HTTP requests to a server process; the jobs themselves are CPU work"
# The CPU jobs run in processes of their own, fed only from this queue.
queues = (JobQueue(JOBS_QUEUE, concurrency=2, pool="prefork", does="runs the offload demo's CPU jobs"),)
params = (
    ChoiceParam("mode", "celery", ("inline", "celery"), label="Where the job runs",
                help="inline: inside the web request; celery: on a worker process, the request answers 202 at once."),
    IntParam("jobs", 4, 1, 8, label="Jobs", help="How many jobs are submitted at once."),
    IntParam("job_ms", 1_500, 50, 2_000, label="Job cost (ms of CPU)", help="About how much CPU time each job needs."),
    ChoiceParam("failure", "none", FAILURES, label="First job goes wrong",
                help="raise: it raises; timeout: it outruns its time limit; kill-worker: its worker process is killed mid-job."),
)
# Small enough for the test suite's run over every demo.
smoke_params = {"mode": "inline", "jobs": 1, "job_ms": 50}

PROBE_EVERY_S = 0.020
IDLE_S = 1.0
TAIL_S = 0.3  # probing goes on this long after the last job, to show the recovery
MAX_PROBES_IN_FLIGHT = 400
PROBE_TIMEOUT_S = 40.0
SERVER_START_TIMEOUT_S = 20.0
NO_WORKER_AFTER_S = 15.0
RESULT_POLL_S = 0.25
REDELIVERY_WATCH_S = 1.0  # after a lost worker, how long to watch for the job starting again
CLEANUP_RESERVE_S = 5.0
STOP_TIMEOUT_S = 5.0  # for each step of tidying up: a stuck step is logged, not waited for

logger = logging.getLogger("demos.offload")


class JobFailed(Exception):
    """A job raised; its error is the message."""


class JobTimedOut(Exception):
    """A job ran past its time limit and was stopped."""


class WorkerLost(Exception):
    """The worker process running a job died mid-job."""


class NoJobWorker(Exception):
    """Nothing took the jobs off the queue."""


def check_params(values):
    if values["failure"] != "none" and values["mode"] != "celery":
        raise ParamError("failure modes are about Celery jobs: set mode to celery")


def _median(values: list[float]) -> float:
    """Median of the jobs' own times (a handful of jobs: no tail is named from them); 0 for none."""
    return stats.percentile(values, 0.5) if values else 0.0


@dataclass
class Job:
    lane: int
    job_id: str
    submitted: float | None = None  # perf_counter times, in this process
    answered: float | None = None
    started: float | None = None
    ended: float | None = None
    worker: str = ""
    steps_done: int = 0
    outcome: str = ""  # done / failed / timed_out / lost
    error: str = ""
    wall_ms: float | None = None
    cpu_ms: float | None = None

    @property
    def label(self) -> str:
        return f"job {self.lane + 1}"

    @property
    def answer_ms(self) -> float:
        """How long its POST took to be answered, in ms; only known once it has been."""
        if self.submitted is None or self.answered is None:
            raise RuntimeError(f"{self.label} was never answered")
        return (self.answered - self.submitted) * 1000


@dataclass
class Probe:
    sent: float
    latency_ms: float | None = None
    finished: bool = False


@dataclass
class Offload:
    """One run's state, shared by its probe, its submissions and its report reader."""

    mode: str
    job_ms: int
    failure: str
    emit: Any
    port: int
    run_key: str
    jobs: list[Job]
    t0_ms: float
    p0: float
    probes: deque = field(default_factory=deque)
    samples: list[tuple[float, float]] = field(default_factory=list)  # (sent, latency_ms)
    probe_errors: int = 0
    probes_skipped: int = 0
    last_answer: float = 0.0  # perf_counter time of the latest answered ping emitted
    queue_depth: int = 0
    queue_depth_max: int = 0
    settled: asyncio.Event = field(default_factory=asyncio.Event)
    tasks: set = field(default_factory=set)  # pings and submissions in flight, cancelled at the end
    # Celery's result backend is synchronous: its calls get threads of their own, never waited for at exit.
    executor: ThreadPoolExecutor = field(default_factory=lambda: ThreadPoolExecutor(max_workers=1))

    def start(self, coroutine, name: str) -> asyncio.Task:
        task = asyncio.create_task(coroutine, name=name)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)
        return task

    def t(self, moment: float) -> float:
        """A perf_counter moment as ms since the run started."""
        return self.t0_ms + (moment - self.p0) * 1000

    def job(self, job_id: str) -> Job | None:
        for job in self.jobs:
            if job.job_id == job_id:
                return job
        return None

    # The probe: open-loop, one ping every 20 ms whether or not the last was answered.

    async def probe_forever(self) -> None:
        next_at = time.perf_counter()
        while True:
            self.flush_probes()
            in_flight = sum(1 for probe in self.probes if not probe.finished)
            if in_flight < MAX_PROBES_IN_FLIGHT:
                probe = Probe(sent=time.perf_counter())
                self.probes.append(probe)
                self.start(self.ping(probe), "ping")
            else:
                self.probes_skipped += 1
            next_at += PROBE_EVERY_S
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    async def ping(self, probe: Probe) -> None:
        try:
            status, _ = await asyncio.wait_for(http(self.port, "GET", "/ping"), PROBE_TIMEOUT_S)
            if status == 200:
                probe.latency_ms = (time.perf_counter() - probe.sent) * 1000
        except (TimeoutError, OSError, ValueError):
            pass
        probe.finished = True

    def flush_probes(self) -> None:
        """Emit answered probes in the order they were sent, each at the moment its answer arrived."""
        while self.probes and self.probes[0].finished:
            probe = self.probes.popleft()
            if probe.latency_ms is None:
                self.probe_errors += 1
                continue
            # Drawn when the answer came, the moment the latency was measured, not when the ping left; two
            # answers read in one loop iteration may be timed a hair out of order, so the series never steps back.
            self.last_answer = max(self.last_answer, probe.sent + probe.latency_ms / 1000)
            self.samples.append((probe.sent, probe.latency_ms))
            self.emit("metric", name="probe_latency_ms", value=round(probe.latency_ms, 2), unit="ms",
                      t=self.t(self.last_answer))

    # Submitting jobs.

    async def submit(self, job: Job) -> None:
        body = {"job_id": job.job_id, "job_ms": self.job_ms, "failure": self.failure if job.lane == 0 else "none"}
        job.submitted = time.perf_counter()
        self.emit("state", lane=job.lane, state="queued", job=job.job_id)
        self.set_queue_depth()
        try:
            status, content = await http(self.port, "POST", f"/jobs/{self.mode}", body)
        except (OSError, ValueError) as error:
            status, content = 0, f"{error.__class__.__name__}: {error}".encode()
        job.answered = time.perf_counter()
        answer_ms = (job.answered - job.submitted) * 1000
        if self.mode == "celery" and status == 202:
            self.emit("log", text=f"{job.label}: 202 Accepted after {answer_ms:.1f} ms")
        elif self.mode == "inline" and status == 200:
            self.emit("log", text=f"{job.label}: 200 OK after {answer_ms:.0f} ms (waited for the job)")
        elif not job.outcome:
            self.end_job(job, "failed", f"the server answered {status}: {content[:200].decode(errors='replace')}")

    def set_queue_depth(self) -> None:
        depth = sum(1 for job in self.jobs if job.submitted is not None and job.started is None and not job.outcome)
        if depth != self.queue_depth:
            self.queue_depth = depth
            self.queue_depth_max = max(self.queue_depth_max, depth)
            self.emit("counter", name="queue_depth", value=depth)
            self.emit("metric", name="queue_depth", value=depth, unit="jobs")

    # Reading what the jobs report.

    def on_report(self, report: dict) -> None:
        job = self.job(report.get("job", ""))
        if job is None:
            return
        kind = report.get("type")
        if kind == "started":
            if job.started is not None:
                self.emit("log", text=f"{job.label} started a second time, on {report.get('worker')}")
                return
            job.started, job.worker = time.perf_counter(), report.get("worker", "")
            self.emit("state", lane=job.lane, state="running", label=job.worker)
            self.set_queue_depth()
        elif kind == "progress" and not job.outcome:
            job.steps_done = int(report["done"])
            self.emit("progress", done=sum(j.steps_done for j in self.jobs), total=len(self.jobs) * STEPS,
                      lane=job.lane, lane_done=job.steps_done, lane_total=int(report["total"]))
        elif kind == "finished":
            job.wall_ms, job.cpu_ms = float(report["wall_ms"]), float(report["cpu_ms"])
            self.end_job(job, "done")
        elif kind == "failed":
            self.end_job(job, "failed", report.get("error", "unknown error"))
        elif kind == "timed_out":
            soft, _ = time_limits(self.job_ms)
            self.end_job(job, "timed_out", f"stopped at its {soft:g} s soft time limit (SoftTimeLimitExceeded)")

    def end_job(self, job: Job, outcome: str, error: str = "") -> None:
        if job.outcome:
            return
        job.outcome, job.error, job.ended = outcome, error, time.perf_counter()
        if outcome == "done":
            self.emit("state", lane=job.lane, state="done")
            self.emit("counter", name="jobs_done", value=sum(1 for j in self.jobs if j.outcome == "done"))
        else:
            self.emit("state", lane=job.lane, state="failed", label=outcome.replace("_", " "))
            where = f" on {job.worker}" if job.worker else ""
            self.emit("log", text=f"{job.label} {outcome.replace('_', ' ')}{where}: {error}")
        self.set_queue_depth()
        if all(j.outcome for j in self.jobs):
            self.settled.set()

    async def read_reports(self) -> None:
        redis = async_redis()  # this run's loop's client, closed when the run ends
        last_poll = time.perf_counter()
        while True:
            raw = await redis.lpop(reports_key(self.run_key), 200)
            reports = raw if isinstance(raw, list) else []  # with a count, LPOP answers a list, or nil when empty
            for item in reports:
                self.on_report(json.loads(item))
            if self.mode == "celery" and time.perf_counter() - last_poll > RESULT_POLL_S:
                last_poll = time.perf_counter()
                await self.check_results()
            if not reports:
                await asyncio.sleep(0.01)

    async def check_results(self) -> None:
        """Ask Celery's result backend about unfinished jobs: a killed process cannot report for itself."""
        waiting = [job for job in self.jobs if job.submitted is not None and job.answered is not None and not job.outcome]
        if not waiting:
            return
        outcomes = await asyncio.wait_for(
            asyncio.get_running_loop().run_in_executor(self.executor, _result_states, [job.job_id for job in waiting]), 10)
        for job in waiting:
            state, error_type, error = outcomes[job.job_id]
            if state in ("FAILURE", "REVOKED") and not job.outcome:
                if error_type == "WorkerLostError":
                    self.end_job(job, "lost", f"its worker process died mid-job ({error}); not retried")
                elif error_type == "TimeLimitExceeded":
                    self.end_job(job, "timed_out", f"killed at its hard time limit ({error})")
                else:
                    self.end_job(job, "failed", f"{error_type}: {error}" if error_type else state)


def _result_states(job_ids: list[str]) -> dict[str, tuple[str, str, str]]:
    """Each job's Celery state, with the type and text of its error when it failed."""
    from coursesite.celery import app

    states = {}
    for job_id in job_ids:
        result = app.AsyncResult(job_id)
        state = result.state
        error = result.result if state == "FAILURE" else None
        states[job_id] = (state, error.__class__.__name__ if isinstance(error, BaseException) else "", str(error or ""))
    return states


def _forget_results(job_ids: list[str]) -> None:
    """Drop the stored failures of this run's jobs from the result backend."""
    from coursesite.celery import app

    for job_id in job_ids:
        app.AsyncResult(job_id).forget()


async def http(port: int, method: str, path: str, body: dict | None = None) -> tuple[int, bytes]:
    """One HTTP/1.0 request on a fresh connection: (status, body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        payload = json.dumps(body).encode() if body is not None else b""
        head = (f"{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(payload)}\r\n\r\n")
        writer.write(head.encode() + payload)
        await writer.drain()
        response = await reader.read()  # HTTP/1.0: the server closes the connection after answering
    finally:
        writer.close()
    response_head, _, content = response.partition(b"\r\n\r\n")
    status_line = response_head.split(b" ", 2)
    if len(status_line) < 2 or not status_line[1].isdigit():
        raise ValueError(f"not an HTTP response: {response[:80]!r}")
    return int(status_line[1]), content


async def start_server(run_key: str) -> tuple[asyncio.subprocess.Process, int]:
    """Start the sandbox web server for this run; return it and the port it listens on."""
    from django.conf import settings

    env = {**os.environ, "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE, "PYTHONUNBUFFERED": "1"}
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "demos.library.offload.server", run_key, "--max-seconds", str(int(time_limit_s) + 10),
        cwd=settings.BASE_DIR, env=env, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
    )
    stdout = process.stdout
    assert stdout is not None  # PIPE was asked for
    try:
        line = await asyncio.wait_for(stdout.readline(), SERVER_START_TIMEOUT_S)
        return process, int(json.loads(line)["port"])
    except (TimeoutError, ValueError, KeyError):
        await stop_server(process)
        raise RuntimeError("the sandbox web server did not start") from None


async def stop_server(process: asyncio.subprocess.Process) -> None:
    """Kill the sandbox web server (it may be in the middle of an inline job) and reap it."""
    if process.returncode is None:
        process.kill()
    try:
        await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
    except TimeoutError:  # SIGKILL cannot be refused; its guard alarm ends it at the latest
        logger.warning("offload sandbox server %s not reaped within %s s", process.pid, STOP_TIMEOUT_S)


async def _wait(helpers: list[asyncio.Task], seconds: float, until: asyncio.Event | None = None) -> bool:
    """Sleep up to `seconds`, or until `until` is set; re-raise any helper's exception (a cancel from the reader, say)."""
    waiter = asyncio.ensure_future(until.wait() if until is not None else asyncio.sleep(seconds))
    try:
        done, _ = await asyncio.wait([waiter, *helpers], timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    for task in done:
        if task is not waiter:
            task.result()  # raises what stopped the helper
            raise RuntimeError(f"{task.get_name()} stopped unexpectedly")
    return until is not None and until.is_set()


async def _settle(tasks: list[asyncio.Task], what: str) -> None:
    """Wait a bounded time for tasks to end; name any still going in the log rather than hang on them."""
    if not tasks:
        return
    done, pending = await asyncio.wait(tasks, timeout=STOP_TIMEOUT_S)
    for task in done:
        if not task.cancelled():
            task.exception()  # retrieved: what ended a helper is reported by the run, not as a stray warning
    if pending:
        logger.warning("offload: %s still pending after %s s: %s", what, STOP_TIMEOUT_S,
                       ", ".join(task.get_name() for task in pending))


async def _offload(params: dict, emit) -> dict:
    mode, job_count, job_ms = params["mode"], params["jobs"], params["job_ms"]
    run_started = time.perf_counter()
    run_key = uuid.uuid4().hex
    t0_ms = emit("lanes", count=job_count, labels=[f"job {lane + 1}" for lane in range(job_count)])
    p0 = time.perf_counter()
    redis = async_redis()
    await redis.set(open_key(run_key), 1, ex=int(time_limit_s) + 30)
    server, helpers = None, []
    run = None
    try:
        server, port = await start_server(run_key)
        run = Offload(mode=mode, job_ms=job_ms, failure=params["failure"], emit=emit, port=port, run_key=run_key,
                      jobs=[Job(lane=lane, job_id=f"{run_key}-{lane + 1}") for lane in range(job_count)], t0_ms=t0_ms, p0=p0)
        helpers = [asyncio.create_task(run.probe_forever(), name="probe"),
                   asyncio.create_task(run.read_reports(), name="report reader")]
        emit("log", text=f"sandbox web server on 127.0.0.1:{port}; probing /ping every 20 ms, idle for {IDLE_S:g} s")
        idle_from = time.perf_counter()
        await _wait(helpers, IDLE_S)
        idle_to = work_from = time.perf_counter()
        emit("log", text=f"submitting {job_count} jobs of ~{job_ms} ms to /jobs/{mode}")
        submissions = [run.start(run.submit(job), f"submit {job.label}") for job in run.jobs]
        deadline = run_started + time_limit_s - CLEANUP_RESERVE_S
        while not run.settled.is_set():
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                unfinished = ", ".join(job.label for job in run.jobs if not job.outcome)
                raise TimeoutError(f"{unfinished} still unfinished after {time_limit_s - CLEANUP_RESERVE_S:g} s")
            if mode == "celery" and not any(job.started or job.outcome for job in run.jobs) \
                    and time.perf_counter() - work_from > NO_WORKER_AFTER_S:
                raise NoJobWorker(f"no worker took a job off the {JOBS_QUEUE} queue within "
                                  f"{NO_WORKER_AFTER_S:g} s; start one with `celery -A coursesite worker -Q offload-jobs`")
            await _wait(helpers, min(remaining, 0.5), until=run.settled)
        # Settled: every job has an outcome, and end_job stamps each one's end with it.
        work_to = max(job.ended for job in run.jobs if job.ended is not None)
        lost = [job for job in run.jobs if job.outcome == "lost"]
        await _wait(helpers, REDELIVERY_WATCH_S if lost else TAIL_S)
        await _settle(submissions, "the job submissions")
        helpers[0].cancel()  # stop sending probes; let the ones in flight land
        await asyncio.gather(helpers[0], return_exceptions=True)
        for _ in range(100):
            if all(probe.finished for probe in run.probes):
                break
            await asyncio.sleep(0.02)
        run.flush_probes()
        starts = {job.job_id: int(await redis.get(starts_key(job.job_id)) or 0) for job in run.jobs}
    finally:
        leftovers = helpers + list(run.tasks if run is not None else ())
        for task in leftovers:
            task.cancel()
        await _settle(leftovers, "the run's probes and readers")
        await redis.delete(open_key(run_key), reports_key(run_key))
        await close_async_redis()
        if server is not None:
            await stop_server(server)
        if run is not None:
            if mode == "celery":
                forgetting = asyncio.get_running_loop().run_in_executor(
                    run.executor, _forget_results, [job.job_id for job in run.jobs])
                await asyncio.wait([forgetting], timeout=5)
            run.executor.shutdown(wait=False)

    _raise_for_failures(run, starts)
    return _summary(run, mode, idle_from, idle_to, work_from, work_to)


def _raise_for_failures(run: Offload, starts: dict[str, int]) -> None:
    for job in run.jobs:
        if job.outcome == "lost":
            times = starts.get(job.job_id, 0)
            again = "and was not run again" if times <= 1 else "so it was handed out again"
            raise WorkerLost(f"{job.label}'s worker process was killed mid-job ({job.worker or 'unknown process'}); "
                             f"the job started {times} time{'s' if times != 1 else ''} {again}")
    for job in run.jobs:
        if job.outcome == "timed_out":
            raise JobTimedOut(f"{job.label} timed out: {job.error}")
    for job in run.jobs:
        if job.outcome == "failed":
            raise JobFailed(f"{job.label} failed: {job.error}")


def _summary(run: Offload, mode: str, idle_from: float, idle_to: float, work_from: float, work_to: float) -> dict:
    idle = [latency for sent, latency in run.samples if idle_from <= sent < idle_to]
    busy = [latency for sent, latency in run.samples if work_from <= sent <= work_to]
    job_walls = [job.wall_ms for job in run.jobs if job.wall_ms is not None]
    job_cpus = [job.cpu_ms for job in run.jobs if job.cpu_ms is not None]
    workers = {job.worker for job in run.jobs if job.worker}
    moments = sorted([(job.started, 1) for job in run.jobs] + [(job.ended, -1) for job in run.jobs])
    running = parallel_max = 0
    for _, change in moments:
        running += change
        parallel_max = max(parallel_max, running)
    answers = [job.answer_ms for job in run.jobs]
    # A p99 only over 100 probes or more; below that the tail is their max, and labelled so.
    busy_tail, idle_tail = stats.tail(busy), stats.tail(idle)
    job_spans = [(job.started, job.ended) for job in run.jobs if job.started is not None and job.ended is not None]
    jobs_span_s = (max(end for _, end in job_spans) - min(start for start, _ in job_spans)) if job_spans else 0.0
    summary: dict[str, int | float | str] = {
        "probe_tail_ms": round(busy_tail.value, 2),
        "probe_tail": busy_tail.label,
        "probe_max_ms": round(max(busy, default=0.0), 2),
        "idle_probe_tail_ms": round(idle_tail.value, 2),
        "idle_probe_tail": idle_tail.label,
        "probes": len(busy),
        "probe_errors": run.probe_errors,
        "probes_skipped": run.probes_skipped,  # ticks with MAX_PROBES_IN_FLIGHT already waiting
        "jobs_done": sum(1 for job in run.jobs if job.outcome == "done"),
        "job_ms_p50": round(_median(job_walls), 1),
        "job_cpu_ms_p50": round(_median(job_cpus), 1),
        # CPU seconds the jobs used over the seconds from the first start to the last end: how many cores they had.
        "cores_busy": round(sum(job_cpus) / 1000 / jobs_span_s, 2) if jobs_span_s > 0 else 0.0,
        "job_answer_ms_max": round(max(answers), 1),
        "queue_depth_max": run.queue_depth_max,
        "workers_used": len(workers),
        "jobs_parallel_max": parallel_max,
        "work_ms": round((work_to - work_from) * 1000, 1),
    }
    jobs, cpu_ms, wall_ms = len(run.jobs), summary["job_cpu_ms_p50"], summary["job_ms_p50"]
    if mode == "inline":
        summary["text"] = (
            f"Hashed inside the web server's requests, {jobs} jobs of about {cpu_ms:.0f} ms of CPU each kept /ping waiting: "
            f"{busy_tail.describe()} against {idle_tail.describe(digits=1)} in this run's idle second; "
            f"the last job's own answer took {summary['job_answer_ms_max']:.0f} ms."
        )
    else:
        processes = f"{len(workers)} worker process{'es' if len(workers) != 1 else ''}"
        summary["text"] = (
            f"Handed to Celery, {jobs} jobs of about {cpu_ms:.0f} ms of CPU each ({wall_ms:.0f} ms start to finish) ran on "
            f"{processes}, {parallel_max} at a time, keeping {summary['cores_busy']:.2f} cores busy, while /ping took "
            f"{busy_tail.describe(digits=1)} against {idle_tail.describe(digits=1)} in this run's idle second; "
            f"every job had its 202 within {summary['job_answer_ms_max']:.0f} ms."
        )
    return summary


def run(params, emit):
    host = cpu_turns.host_conditions()  # before the jobs: was the machine already busy?
    summary = asyncio.run(_offload(params, emit))
    return _with_noise_note(summary, host)


def _with_noise_note(summary: dict, host: dict) -> dict:
    """Say so when the jobs' times measure a busy machine more than the method.

    A job that got less than half a core for its wall time (its CPU time under
    half its wall time), or a load average above the cores before the run,
    means other work shared the cores: the latencies are then noise.
    """
    cpu_ms, wall_ms = float(summary["job_cpu_ms_p50"]), float(summary["job_ms_p50"])
    share = cpu_ms / wall_ms if wall_ms > 0 else 1.0
    if cpu_turns.machine_was_busy(host) or share < 0.5:
        summary["text"] += (f" Each job had {share:.0%} of a core while it ran, and the load average was "
                            f"{host['load_before']:.2f} on {host['cores']} cores before the run: other work "
                            "shared the CPU, so read these times as noise, not as a finding.")
        summary["noise"] = True
    return summary


# "Edit and run" opens this program: the idea above in a few lines of standard-library Python that a
# reader can change and run (the sandbox has no network and no database: timers, threads, processes).
starting_program = '''\
import time
from concurrent.futures import ProcessPoolExecutor


def heavy(n):
    total = 0
    for i in range(n):
        total += i * i
    return total


if __name__ == "__main__":
    started = time.perf_counter()
    for _ in range(2):
        heavy(400_000)
    print(f"two heavy jobs inside the request: {time.perf_counter() - started:.2f} s before it can answer")
    with ProcessPoolExecutor(max_workers=2) as workers:
        started = time.perf_counter()
        jobs = [workers.submit(heavy, 400_000) for _ in range(2)]
        print(f"handed to worker processes: the request answers after {(time.perf_counter() - started) * 1000:.0f} ms")
        for job in jobs:
            job.result()
        print(f"the workers finished {time.perf_counter() - started:.2f} s later")
'''
