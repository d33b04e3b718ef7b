"""parallelism: CPU work speeds up on processes, not on threads under the GIL; waiting speeds up on threads."""
import os
import statistics
import sys

import pytest

from demos.library.parallelism import MAX_ROUNDS, ROUNDS
from lessons.rendering import render_lesson_markdown
from lessons.services import shipped_courses
from tests.demos.helpers import demo_socket, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server", "celery_worker_thread", "reset_worker_cache")]

LESSON = "02-concurrency-vs-parallelism.md"
GIL_BUILD = getattr(sys, "_is_gil_enabled", lambda: True)()


async def _run(params: dict) -> tuple[dict, list[dict]]:
    async with demo_socket() as socket:
        accepted = await start_run(socket, "parallelism", params)
        batches, finished = await receive_until_finished(socket, accepted["run"], timeout=60)
    assert finished["status"] == "succeeded", finished
    return finished["summary"], [event for batch in batches for event in batch["events"]]


def _running_lanes(events: list[dict]) -> set[int]:
    return {event["lane"] for event in events if event["kind"] == "state" and event["state"] == "running"}


def _last_states(events: list[dict]) -> dict[int, str]:
    """Each lane's state at the end of the run."""
    return {event["lane"]: event["state"] for event in events if event["kind"] == "state"}


def _cores_busy(events: list[dict]) -> list[float]:
    return [event["value"] for event in events if event["kind"] == "metric" and event["name"] == "cores_busy"]


def _stretches(events: list[dict], lanes: set[int], round_number: int) -> tuple[float, float] | None:
    """When `lanes` began and ended their stretch of one round: their first running and their last finish."""
    starts, ends = [], []
    for lane in lanes:
        states = [event for event in events if event["kind"] == "state" and event["lane"] == lane]
        for index, event in enumerate(states):
            if event["state"] == "running" and event.get("label") == f"round {round_number}":
                starts.append(event["t"])
                ends.append(states[index + 1]["t"])  # its "waiting for its next turn", or "done" after the last
    return (min(starts), max(ends)) if starts else None


def _assert_claim_or_said_noise(run: dict, holds: bool) -> None:
    """The claim holds, or the machine got in the way and the summary says noise: the load was above the cores
    before the run, the same work cost far more CPU time side by side (cores slowed from outside the run), too
    few rounds cost both sides the same CPU time, or a round came out above the cores (their speed changed
    within the run)."""
    if holds:
        return
    assert run["noise"] and "noise" in run["text"], run
    busy_before = run["load_before"] > run["cores"] and "load average" in run["text"]
    slowed_cores = "the CPU time when the workers ran side by side" in run["text"]
    changed_speed = ("so the speed of the cores changed while it ran" in run["text"]
                     or "so the host kept changing the cores' speed" in run["text"])
    assert busy_before or slowed_cores or changed_speed, run  # on a machine that did none, a miss is a real failure


async def test_cpu_work_speeds_up_on_processes_in_every_run():
    # The claim (issue 15) is >= 1.5x at the defaults on two otherwise idle cores in 10 runs of 10: a ratio of
    # wall-clock times, which bench/parallelism.py measures and reports. On this project's VM the host slows a
    # vCPU by itself now and then, and bench runs have come out at 1.45x and 1.47x with every round inside the
    # cores and nothing to call noise. A test asserting 1.5x fails by chance. So here, three runs in a row must
    # each show what no serial run can: processes clearly faster than one worker (>= 1.2x), or the summary
    # saying noise.
    runs = [await _run({}) for _ in range(3)]  # defaults: cpu work, 2 processes
    for each, events in runs:
        assert each["cpu_count"] == each["cores"] == len(os.sched_getaffinity(0))
        assert each["python_build"] == ("GIL" if GIL_BUILD else "free-threaded")
        assert f"{each['cores_busy']:.2f} cores busy" in each["text"] and "speedup" in each["text"], each
        assert "2 processes" in each["text"]
        if each["speedup"] > each["cores"] * 1.1:
            assert each["noise"] and "more than" in each["text"], each  # above the cores: never a finding
        _assert_claim_or_said_noise(each, each["speedup"] >= 1.2)
        # Every round, the same 32 pieces on both sides, taken by whichever process was free; both took some.
        assert each["pieces"] == 32 and "cut into 32 pieces" in each["text"], each
        assert _last_states(events) == {0: "done", 1: "done", 2: "done"}, events
        shares = each["text"].split("as they became free (")[1].split(" over the rounds)")[0].split(" + ")
        assert sum(map(int, shares)) == 32 * each["rounds"] and min(map(int, shares)) > 0, each
        assert _running_lanes(events) == {0, 1, 2}
        # The speedup shown is the median of the counted rounds' own, and their range is in the text. A round
        # counts when its pieces cost both sides the same CPU time; the others are set aside and run again.
        rounds = each["round_speedups"]
        assert len(rounds) == each["rounds"] and ROUNDS <= each["rounds"] <= MAX_ROUNDS, each
        assert each["rounds_counted"] == ROUNDS or each["rounds"] == MAX_ROUNDS, each
        counted = [ratio for number, ratio in enumerate(rounds, 1) if number not in each["rounds_set_aside"]]
        assert len(counted) == each["rounds_counted"], each
        if not each["noise"]:
            assert each["speedup"] == pytest.approx(statistics.median(counted), abs=0.01), each
            assert f"ranged from {min(counted):.2f}× to {max(counted):.2f}×" in each["text"], each
        # The ratios shown are rounded to two places, so one just outside 10% (1.1004) shows as 1.1.
        for number in each["rounds_set_aside"]:
            assert not 0.9 < each["round_cpu_ratios"][number - 1] < 1.1, each
            assert f"{rounds[number - 1]:.2f}×" in each["text"], each  # shown, not hidden
        # The sides take turns, A B then B A, and one side's stretch ends before the other's begins.
        for number in range(1, each["rounds"] + 1):
            baseline, processes = _stretches(events, {0}, number), _stretches(events, {1, 2}, number)
            assert baseline and processes, (number, events)
            first, second = (baseline, processes) if number % 2 else (processes, baseline)
            assert first[1] <= second[0], (number, first, second)


@pytest.mark.skipif(not GIL_BUILD, reason="the claim is about the GIL")
async def test_cpu_work_does_not_speed_up_on_threads_under_the_gil():
    summary, events = await _run({"mode": "threads"})
    _assert_claim_or_said_noise(summary, summary["speedup"] < 1.3)
    # The two threads take turns: together they never keep much more than one core busy.
    busy = _cores_busy(events)
    assert busy and max(busy) <= 1.4
    assert summary["cores_busy"] <= 1.2, summary
    assert summary["python_build"] == "GIL"


async def test_a_hash_that_releases_the_gil_runs_in_parallel_on_threads():
    # hashlib.pbkdf2_hmac drops the GIL while OpenSSL computes, so two threads of one process use two cores.
    # One run: its speedup is already the median of alternating rounds (it was the median of 3 runs).
    summary, _ = await _run({"work": "hash", "mode": "threads"})
    assert ROUNDS <= len(summary["round_speedups"]) <= MAX_ROUNDS, summary
    _assert_claim_or_said_noise(summary, summary["speedup"] >= 1.5)
    assert "2 threads" in summary["text"] and "2 hash jobs" in summary["text"]


async def test_waiting_work_speeds_up_on_threads():
    summary, events = await _run({"work": "io", "mode": "threads", "workers": 4})
    assert summary["speedup"] > 2.5, summary  # about 4 expected
    assert _running_lanes(events) == {0, 1, 2, 3, 4}


def test_the_lesson_embeds_the_cpu_and_the_io_compares():
    rendered = render_lesson_markdown((shipped_courses()[0] / LESSON).read_text())
    assert rendered.demo_slugs.count("parallelism") == 2
    assert 'data-demo="parallelism"' in rendered.html
