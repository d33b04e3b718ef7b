"""CPU work offloaded to Celery keeps the web tier answering, done inline it stalls it,
and jobs that go wrong end the run as failed, saying why, without running twice.

The run goes through the in-process Celery worker; the jobs go to a real
prefork worker in a subprocess, consuming only the `offload-jobs` queue.
"""
import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings

from demos.library.offload.tasks import JOBS_QUEUE, STEPS, starts_key
from tests.conftest import _test_database_url
from tests.demos.helpers import demo_socket, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

BASE_DIR = Path(settings.BASE_DIR)


@pytest.fixture(scope="module")
def jobs_worker(django_db_setup, django_db_blocker):
    """A real prefork Celery worker for the offload jobs, in its own process, against the test database."""
    from coursesite.celery import app

    with django_db_blocker.unblock():
        database_url = _test_database_url()
    hostname = f"offload-test-{os.getpid()}@{socket.gethostname()}"
    env = {**os.environ, "DATABASE_URL": database_url, "DJANGO_SETTINGS_MODULE": "coursesite.settings.test"}
    (BASE_DIR / "var").mkdir(exist_ok=True)
    log = open(BASE_DIR / "var" / f"offload-jobs-worker-{os.getpid()}.log", "w")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "celery"), "-A", "coursesite", "worker", "-Q", JOBS_QUEUE,
         "--concurrency", "2", "-P", "prefork", "--hostname", hostname, "--loglevel", "WARNING"],
        cwd=BASE_DIR, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 40
        while not app.control.ping(destination=[hostname], timeout=0.5):
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the offload jobs worker did not start; see {log.name}")
        yield hostname
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


@pytest.fixture
def workers(celery_worker_thread, jobs_worker, reset_worker_cache):
    """The run's worker (in this process) and the jobs' worker (a subprocess)."""


async def run_offload(params: dict, timeout: float = 60) -> tuple[list[dict], dict]:
    async with demo_socket() as socket_:
        accepted = await start_run(socket_, "offload", params)
        batches, finished = await receive_until_finished(socket_, accepted["run"], timeout=timeout)
    assert [batch["seq"] for batch in batches] == list(range(len(batches)))
    return [event for batch in batches for event in batch["events"]], finished


def lane_states(events: list[dict], lane: int) -> list[str]:
    return [event["state"] for event in events if event["kind"] == "state" and event["lane"] == lane]


def check_stream(events: list[dict], jobs: int) -> None:
    """Each job's lane goes queued -> running -> done, and its progress steps arrive in order."""
    assert events[0]["kind"] == "lanes" and events[0]["count"] == jobs
    for lane in range(jobs):
        assert lane_states(events, lane) == ["queued", "running", "done"], lane
        steps = [event["lane_done"] for event in events if event["kind"] == "progress" and event["lane"] == lane]
        assert steps == list(range(1, STEPS + 1)), (lane, steps)
    overall = [event["done"] for event in events if event["kind"] == "progress"]
    assert overall == sorted(overall) and overall[-1] == jobs * STEPS
    probe_times = [event["t"] for event in events if event["kind"] == "metric" and event["name"] == "probe_latency_ms"]
    assert probe_times == sorted(probe_times) and len(probe_times) > 50


def probe_claim_holds(offloaded: dict) -> bool:
    """The issue's claim for celery mode: /ping's tail stays within 2 x its idle tail (this run's) + 10 ms."""
    return offloaded["probe_tail_ms"] <= 2 * offloaded["idle_probe_tail_ms"] + 10


async def test_offloaded_jobs_keep_the_probe_near_idle_and_inline_jobs_stall_it(workers):
    inline_events, inline_done = await run_offload({"mode": "inline"})
    assert inline_done["status"] == "succeeded", inline_done
    # Other test runs share these two cores, and a neighbour's burst during the
    # busy phase (but not the idle one) can spoil one measurement; a working
    # offload passes within three tries, while one that blocked the server
    # would fail them all by hundreds of milliseconds.
    attempts = []
    for _ in range(3):
        celery_events, celery_done = await run_offload({"mode": "celery"})
        assert celery_done["status"] == "succeeded", celery_done
        attempts.append(celery_done["summary"])
        if probe_claim_holds(attempts[-1]):
            break
    inline, offloaded = inline_done["summary"], attempts[-1]
    assert probe_claim_holds(offloaded), attempts
    assert inline["probe_tail_ms"] >= 5 * offloaded["probe_tail_ms"], (inline, offloaded)
    check_stream(inline_events, 4)
    check_stream(celery_events, 4)
    assert inline["jobs_done"] == offloaded["jobs_done"] == 4

    # Inline: one web process did every job, one at a time, with the rest waiting.
    assert inline["workers_used"] == 1 and inline["jobs_parallel_max"] == 1
    assert inline["queue_depth_max"] >= 3
    assert inline["job_answer_ms_max"] >= 3 * inline["job_ms_p50"]
    # Celery: each job accepted at once, two worker processes hashing side by side.
    assert offloaded["workers_used"] == 2 and offloaded["jobs_parallel_max"] == 2
    assert offloaded["queue_depth_max"] >= 2
    assert offloaded["job_answer_ms_max"] < 0.5 * offloaded["job_ms_p50"]
    running_labels = {event["label"] for event in celery_events if event["kind"] == "state" and event["state"] == "running"}
    assert len(running_labels) == 2 and all("pid" in label for label in running_labels)
    assert "Handed to Celery" in offloaded["text"] and "idle second" in offloaded["text"]
    assert f"{offloaded['cores_busy']:.2f} cores busy" in offloaded["text"]
    for summary in (inline, offloaded):
        # One idle second is about 50 probes: too few for a p99, so the text names their max.
        assert summary["idle_probe_tail"].startswith("max of") and summary["idle_probe_tail"] in summary["text"]
        assert "p99" not in summary["text"] or summary["probes"] >= 100, summary["text"]
        if summary.get("noise"):
            assert "noise" in summary["text"] and "load average" in summary["text"]


async def test_a_job_that_raises_ends_the_run_failed_with_its_error(workers):
    events, finished = await run_offload({"mode": "celery", "jobs": 2, "job_ms": 200, "failure": "raise"})
    assert finished["status"] == "failed"
    assert "job 1 failed: ValueError: the password store rejected this hash" in finished["summary"]["text"]
    assert lane_states(events, 0) == ["queued", "running", "failed"]
    assert lane_states(events, 1) == ["queued", "running", "done"]
    assert any("ValueError" in event["text"] for event in events if event["kind"] == "log")


async def test_a_job_past_its_time_limit_is_stopped_and_reported_as_timed_out(workers):
    started = time.monotonic()
    events, finished = await run_offload({"mode": "celery", "jobs": 2, "job_ms": 200, "failure": "timeout"})
    assert finished["status"] == "failed"
    assert "job 1 timed out" in finished["summary"]["text"] and "time limit" in finished["summary"]["text"]
    timed_out = [event for event in events if event["kind"] == "state" and event["lane"] == 0 and event["state"] == "failed"]
    assert timed_out and timed_out[0]["label"] == "timed out"
    # Its soft limit is 3.6 s; the runaway job wanted about 10 s of CPU.
    assert time.monotonic() - started < 20


async def test_a_killed_worker_fails_the_run_and_its_job_is_not_run_again(workers):
    from redis.asyncio import Redis

    events, finished = await run_offload({"mode": "celery", "jobs": 2, "job_ms": 300, "failure": "kill-worker"})
    assert finished["status"] == "failed"
    text = finished["summary"]["text"]
    assert "WorkerLost" in text and "killed mid-job" in text and "started 1 time" in text
    assert lane_states(events, 0) == ["queued", "running", "failed"]
    assert lane_states(events, 1) == ["queued", "running", "done"]
    job_ids = [event["job"] for event in events if event["kind"] == "state" and event["state"] == "queued"]
    await_redelivery_s = 2.0  # late acks with requeue-on-loss would hand the job out again within this
    await asyncio.sleep(await_redelivery_s)
    redis = Redis.from_url(settings.REDIS_URL)
    try:
        assert [int(await redis.get(starts_key(job_id)) or 0) for job_id in job_ids] == [1, 1]
    finally:
        await redis.aclose()


async def test_failure_modes_need_celery_mode():
    async with demo_socket() as socket_:
        await socket_.send_json_to({"type": "run", "demo": "offload", "params": {"mode": "inline", "failure": "raise"}, "ref": "x"})
        error = await socket_.receive_json_from(timeout=10)
    assert error["type"] == "error" and error["code"] == "invalid_params" and "celery" in error["message"]


def sandbox_pids(run_key: str) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and run_key.encode() in (entry / "cmdline").read_bytes():
                pids.append(int(entry.name))
        except OSError:
            continue  # the process ended while we looked
    return pids


async def test_cancelling_a_run_stops_its_sandbox_server(workers):
    async with demo_socket() as socket_:
        accepted = await start_run(socket_, "offload", {"mode": "celery", "jobs": 2, "job_ms": 2000})
        run_key = None
        while True:
            message = await socket_.receive_json_from(timeout=20)
            assert message["type"] == "events", message
            states = [event for event in message["events"] if event["kind"] == "state"]
            run_key = run_key or next((event["job"].rsplit("-", 1)[0] for event in states if event["state"] == "queued"), None)
            if any(event["state"] == "running" for event in states):
                break
        assert run_key and sandbox_pids(run_key)
        await socket_.send_json_to({"type": "cancel", "run": accepted["run"]})
        while (message := await socket_.receive_json_from(timeout=10))["type"] != "finished":
            pass
    assert message["status"] == "cancelled"
    deadline = time.monotonic() + 10
    while sandbox_pids(run_key):
        assert time.monotonic() < deadline, "the sandbox web server outlived its cancelled run"
        await asyncio.sleep(0.1)
