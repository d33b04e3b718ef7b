"""The playground's tracer: a reader's program, run under plain Python with fd 3 on a pipe, is traced as lanes
(its tasks and threads) whose states and main.py line numbers say what each was doing; the program's own output,
traceback and exit code are what `python main.py` gives."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from demos.library.playground import tracer

TRACER = Path(tracer.__file__)
STATES = {"running", "blocked", "waiting", "lock-wait", "queued", "done", "failed"}


def _run_traced(tmp_path: Path, source: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
    """Run `source` as main.py the way the sandbox does, with the trace pipe on fd 3; every trace line is checked
    against the contract's shape before it is returned."""
    main = tmp_path / "main.py"
    main.write_text(textwrap.dedent(source))
    read_end, write_end = os.pipe()
    try:
        process = subprocess.Popen(
            [sys.executable, "-I", "-X", "utf8", str(TRACER), str(main)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, pass_fds=(3,), cwd=tmp_path,
            preexec_fn=lambda: os.dup2(write_end, 3),
        )
    finally:
        os.close(write_end)
    with os.fdopen(read_end, "rb") as trace_pipe:
        raw = trace_pipe.read()
    stdout, stderr = process.communicate(timeout=30)
    result = subprocess.CompletedProcess(process.args, process.returncode, stdout.decode(), stderr.decode())
    events, announced = [], {}
    for line in raw.splitlines():
        assert len(line) + 1 <= 1024
        event = json.loads(line)
        if event["kind"] == "lane":
            assert set(event) == {"kind", "lane", "label", "type"} and event["type"] in ("task", "thread")
            assert event["lane"] == len(announced) and len(event["label"]) <= 120
            announced[event["lane"]] = event
        elif event["kind"] == "cap":
            assert set(event) == {"kind", "lane", "what"} and event["what"] in ("lanes", "states")
        else:
            assert event["kind"] == "state" and event["state"] in STATES
            assert event["lane"] in announced, "a lane is announced before its first state"
            assert event["line"] is None or isinstance(event["line"], int)
            assert set(event) <= {"kind", "lane", "state", "line", "label"}
        events.append(event)
    return result, events


def _lanes(events: list[dict], lane_type: str) -> dict[int, str]:
    return {event["lane"]: event["label"] for event in events if event["kind"] == "lane" and event["type"] == lane_type}


def _states(events: list[dict], lane: int) -> list[tuple[str, int | None, str]]:
    return [(event["state"], event["line"], event.get("label", ""))
            for event in events if event["kind"] == "state" and event["lane"] == lane]


def _lane_named(events: list[dict], words: str) -> int:
    return next(event["lane"] for event in events if event["kind"] == "lane" and words in event["label"])


def test_two_tasks_sleeping_each_wait_at_their_await_line_and_end_done(tmp_path):
    result, events = _run_traced(tmp_path, """\
        import asyncio

        async def worker(name, seconds):
            print("start", name)
            await asyncio.sleep(seconds)
            print("end", name)

        async def main():
            await asyncio.gather(worker("a", 0.05), worker("b", 0.1))

        asyncio.run(main())
    """)
    assert result.returncode == 0 and result.stderr == ""
    assert result.stdout == "start a\nstart b\nend a\nend b\n"
    tasks = _lanes(events, "task")
    workers = [lane for lane, label in tasks.items() if "worker()" in label]
    assert len(workers) == 2 and any("main()" in label for label in tasks.values())
    for lane in workers:
        states = _states(events, lane)
        assert states[0] == ("queued", 9, "created")  # created by gather, on main.py's line 9
        assert [state for state, _, _ in states].count("queued") == 1
        assert ("waiting", 5, "await asyncio.sleep") in states
        assert states.index(("waiting", 5, "await asyncio.sleep")) > [s[0] for s in states].index("running")
        assert states[-1][0] == "done"
    assert ("waiting", 9, "await asyncio.gather") in _states(events, _lane_named(events, "main()"))
    assert _lanes(events, "thread") == {0: "MainThread"}


def test_time_sleep_in_a_coroutine_shows_the_loop_thread_blocked_while_the_task_runs(tmp_path):
    result, events = _run_traced(tmp_path, """\
        import asyncio
        import time

        async def main():
            time.sleep(0.1)

        asyncio.run(main())
    """)
    assert result.returncode == 0
    loop_thread = _lane_named(events, "MainThread")
    task = _lane_named(events, "main()")
    thread_states = _states(events, loop_thread)
    assert ("blocked", 5, "time.sleep") in thread_states
    # the thread is blocked in time.sleep inside the task's step: the task is running all that while
    ordered = [(event["lane"], event["state"]) for event in events if event["kind"] == "state"]
    blocked_at = ordered.index((loop_thread, "blocked"), ordered.index((task, "running")))
    assert (task, "waiting") not in ordered[:blocked_at] and (task, "done") in ordered[blocked_at:]


def test_a_task_ready_behind_one_that_holds_the_loop_is_queued_until_the_loop_resumes_it(tmp_path):
    result, events = _run_traced(tmp_path, """\
        import asyncio
        import time

        async def worker():
            await asyncio.sleep(0.05)
            time.sleep(0.1)  # holds the loop after waking

        async def main():
            await asyncio.gather(worker(), worker())

        asyncio.run(main())
    """)
    assert result.returncode == 0
    first, second = [lane for lane, label in _lanes(events, "task").items() if "worker()" in label]
    ordered = [(event["lane"], event["state"], event.get("label", "")) for event in events if event["kind"] == "state"]
    woken = ordered.index((first, "running", ""), ordered.index((first, "waiting", "await asyncio.sleep")))
    # both timers were due together: while the first holds the loop, the second is ready but not running
    queued = ordered.index((second, "queued", "ready: its await is done"))
    assert woken < queued < ordered.index((second, "running", ""), queued)
    assert ("queued", 5, "ready: its await is done") in _states(events, second)


def test_asyncio_lock_contention_shows_lock_wait_at_the_async_with_line(tmp_path):
    result, events = _run_traced(tmp_path, """\
        import asyncio

        async def holder(lock):
            async with lock:
                await asyncio.sleep(0.05)

        async def main():
            lock = asyncio.Lock()
            await asyncio.gather(holder(lock), holder(lock))

        asyncio.run(main())
    """)
    assert result.returncode == 0
    holders = [lane for lane, label in _lanes(events, "task").items() if "holder()" in label]
    first, second = (_states(events, lane) for lane in holders)
    assert ("lock-wait", 4, "await asyncio.Lock.acquire") in second
    assert "lock-wait" not in [state for state, _, _ in first]
    assert ("waiting", 5, "await asyncio.sleep") in first and ("waiting", 5, "await asyncio.sleep") in second


def test_a_thread_pool_sleeping_shows_each_worker_thread_blocked_then_done(tmp_path):
    result, events = _run_traced(tmp_path, """\
        import time
        from concurrent.futures import ThreadPoolExecutor

        def job(seconds):
            time.sleep(seconds)
            return seconds

        with ThreadPoolExecutor(max_workers=2) as pool:
            print(sum(pool.map(job, [0.05, 0.05, 0.05])))
    """)
    assert result.returncode == 0 and result.stdout.strip() == "0.15000000000000002"
    threads = _lanes(events, "thread")
    workers = [lane for lane, label in threads.items() if label.startswith("ThreadPoolExecutor")]
    assert len(workers) == 2
    for lane in workers:
        states = _states(events, lane)
        assert ("blocked", 5, "time.sleep") in states
        assert states[-1][0] == "done"
    # the main thread waits on the pool's results: a lock acquire, seen as blocked at the line that waits
    assert any(state == "blocked" and line == 9 for state, line, _ in _states(events, 0))


def test_a_failing_task_is_failed_at_the_raising_line_with_its_exception(tmp_path):
    result, events = _run_traced(tmp_path, """\
        import asyncio

        async def fails():
            await asyncio.sleep(0.01)
            raise ValueError("no such thing")

        async def main():
            task = asyncio.create_task(fails(), name="fragile")
            try:
                await task
            except ValueError:
                print("caught")

        asyncio.run(main())
    """)
    assert result.returncode == 0 and result.stdout == "caught\n"
    lane = _lane_named(events, "fragile")
    assert _lanes(events, "task")[lane] == "fragile: fails()"  # the name create_task gave it
    assert _states(events, lane)[0] == ("queued", 8, "created")
    assert _states(events, lane)[-1] == ("failed", 5, "ValueError: no such thing")
    assert ("waiting", 10, "await a task") in _states(events, _lane_named(events, "main()"))
    assert _states(events, _lane_named(events, "main()"))[-1][0] == "done"


def test_an_uncaught_exception_gives_pythons_own_traceback_and_exit_code(tmp_path):
    source = """\
        import asyncio

        async def main():
            await asyncio.sleep(0)
            return {}["missing"]

        print("before")
        asyncio.run(main())
    """
    result, events = _run_traced(tmp_path, source)
    plain = subprocess.run([sys.executable, "-I", "-X", "utf8", str(tmp_path / "main.py")], capture_output=True,
                           text=True, cwd=tmp_path, timeout=30)
    assert plain.returncode == result.returncode == 1
    assert result.stdout == plain.stdout == "before\n"
    assert result.stderr == plain.stderr
    assert result.stderr.startswith('Traceback (most recent call last):\n  File "' + str(tmp_path / "main.py"))
    assert "tracer.py" not in result.stderr and "runpy" not in result.stderr
    assert _states(events, _lane_named(events, "main()"))[-1] == ("failed", 5, "KeyError: 'missing'")
    assert _states(events, 0)[-1] == ("failed", 5, "KeyError: 'missing'")  # the line that raised it


@pytest.mark.parametrize("source, exit_code", [
    ("import sys\nsys.exit(3)\n", 3),
    ("import sys\nsys.exit('bye')\n", 1),
    ("x = (\n", 1),
])
def test_sys_exit_and_syntax_errors_end_as_under_plain_python(tmp_path, source, exit_code):
    result, _ = _run_traced(tmp_path, source)
    plain = subprocess.run([sys.executable, "-I", "-X", "utf8", str(tmp_path / "main.py")], capture_output=True,
                           text=True, cwd=tmp_path, timeout=30)
    assert result.returncode == plain.returncode == exit_code
    assert result.stderr == plain.stderr


def test_without_fd_3_the_program_just_runs(tmp_path):
    main = tmp_path / "main.py"
    main.write_text("import asyncio\nasync def main():\n    print('ran')\nasyncio.run(main())\n")
    result = subprocess.run([sys.executable, "-I", str(TRACER), str(main)], capture_output=True, text=True,
                            timeout=30, close_fds=True)
    assert (result.returncode, result.stdout, result.stderr) == (0, "ran\n", "")


def test_a_busy_program_stays_within_the_lane_and_state_caps(tmp_path, monkeypatch):
    result, events = _run_traced(tmp_path, """\
        import threading

        def spin():
            lock = threading.Lock()
            for _ in range(1000):
                lock.acquire()
                lock.release()

        threads = [threading.Thread(target=spin) for _ in range(70)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        print("joined")
    """)
    assert result.returncode == 0 and result.stdout == "joined\n"
    assert len(_lanes(events, "thread")) == tracer.MAX_LANES
    # the cap is told once, so the relay can say what is not drawn
    assert [event["what"] for event in events if event["kind"] == "cap"] == ["lanes"]
    # uncontended acquires return at once: coalesced away, not thousands of blocked/running flickers
    assert sum(event["kind"] == "state" for event in events) < 1000
