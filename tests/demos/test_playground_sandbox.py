"""The playground's sandbox on its own: what a program inside can see, and how its output and trace reach the reader.

These call `sandbox.run_program` in this process with the engine's own
recorder and emitter, as the worker does; the escape suite
(test_playground_escapes.py) sends hostile programs through the real site.
"""
import dataclasses
import json
import os
import subprocess
import sys
import threading
import time

import pytest
from django.conf import settings

from demos.base import RunCancelled
from demos.events import EventRecorder
from demos.library.playground import sandbox
from demos.supervisor import RunEmitter

# At the site's own CPU priority (nice 0, no CPU cgroup): on a machine busy with other work the default
# priority could starve these programs past their limits; the first test checks the default nice itself.
LIMITS = sandbox.Limits(wall_s=5.0, cpu_s=3, tasks=24, output_bytes=256 * 1024, nice=0, cpu_shares=0)


def run(code: str, limits: sandbox.Limits = LIMITS, emitter: RunEmitter | None = None, tracer: str | None = None):
    recorder = EventRecorder()
    emitter = emitter or RunEmitter(recorder, time_limit_s=30)
    outcome = sandbox.run_program(code, emitter, limits=limits, tracer=tracer)
    return outcome, emitter.recorder.stored


def output_of(events, stream: str) -> str:
    return "".join(event["text"] for event in events if event["kind"] == "output" and event["stream"] == stream)


def sandbox_processes() -> list[int]:
    """Sandbox processes (bubblewrap, or anything of a playground uid) still running below this test process.

    Only this process's descendants count: other test runs on the machine may
    have sandboxes of their own.
    """
    low = settings.CODE_SANDBOX_UID_BASE
    high = low + settings.CODE_SANDBOX_UID_COUNT
    parents, owners, commands = {}, {}, {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"{entry.path}/stat") as stat:
                parents[int(entry.name)] = int(stat.read().rsplit(")", 1)[1].split()[1])
            owners[int(entry.name)] = os.stat(entry.path).st_uid
            with open(f"{entry.path}/cmdline", "rb") as cmdline:
                commands[int(entry.name)] = cmdline.read()
        except (OSError, ValueError, IndexError):
            continue
    left = []
    for pid in parents:
        ancestor = parents.get(pid)
        while ancestor and ancestor != os.getpid():
            ancestor = parents.get(ancestor)
        if ancestor and (low <= owners.get(pid, 0) < high or b"/bwrap\0" in commands.get(pid, b"")
                         or b"/sandbox/main.py" in commands.get(pid, b"")):
            left.append(pid)
    return left


def test_the_program_sees_only_the_standard_library_a_private_tmp_and_three_environment_variables():
    code = """
import json, os, sys
seen = {"uid": os.getuid(), "nice": os.nice(0), "root": sorted(os.listdir("/")), "environ": sorted(os.environ),
        "tmp": os.listdir("/tmp"), "work": os.path.exists("/work"), "cwd": os.getcwd()}
site = [path for path in sys.path if path.endswith("site-packages")]
seen["site_packages"] = [os.listdir(path) for path in site if os.path.isdir(path)]
for module in ("django", "coursesite", "demos", "psycopg"):
    try:
        __import__(module)
        seen[module] = "imported"
    except ImportError as error:
        seen[module] = type(error).__name__
open("/tmp/scratch", "w").write("x")
try:
    os.nice(-1)
    seen["renice"] = "allowed"
except PermissionError:
    seen["renice"] = "refused"
print(json.dumps(seen))
"""
    outcome, events = run(code, limits=dataclasses.replace(LIMITS, nice=sandbox.Limits().nice))
    assert outcome.exit_code == 0, output_of(events, "stderr")
    seen = json.loads(output_of(events, "stdout"))
    assert seen["uid"] >= 1000 and seen["uid"] != os.getuid()
    assert seen["nice"] == 10 and seen["renice"] == "refused"  # below the site's processes, and it cannot undo that
    assert seen["root"] == sorted(["dev", "lib", "lib64", "proc", "root", "sandbox", "tmp", "usr"])
    assert set(seen["environ"]) <= {"PATH", "HOME", "LANG", "MALLOC_ARENA_MAX", "PWD"}
    assert seen["tmp"] == [] and seen["cwd"] == "/tmp" and seen["work"] is False
    assert seen["site_packages"] in ([], [[]])  # the interpreter's own site-packages is masked empty
    assert {seen[name] for name in ("django", "coursesite", "demos", "psycopg")} == {"ModuleNotFoundError"}


def test_stdout_and_stderr_each_arrive_in_order_told_apart_in_chunks_of_at_most_4_kib():
    # Two pipes: the order within each stream is kept; between them, it is whichever the relay read first.
    code = """
import sys
print("é" * 5000)
sys.stdout.flush()
print("to stderr", file=sys.stderr)
sys.stderr.flush()
print("last")
"""
    outcome, events = run(code)
    chunks = [event for event in events if event["kind"] == "output"]
    assert all(len(chunk["text"].encode()) <= 4096 for chunk in chunks)
    assert output_of(events, "stdout") == "é" * 5000 + "\nlast\n"
    assert output_of(events, "stderr") == "to stderr\n"
    assert outcome.output_bytes == len(("é" * 5000 + "\nlast\n").encode()) + len("to stderr\n")


def test_lines_on_fd_3_become_lane_and_state_events_and_bad_lines_are_dropped_and_counted():
    lines = [
        {"kind": "lane", "lane": 0, "label": "main thread", "type": "thread"},
        {"kind": "state", "lane": 0, "state": "running", "line": 2},
        {"kind": "state", "lane": 1, "state": "running", "line": 2},  # lane 1 was never announced
        {"kind": "state", "lane": 0, "state": "dancing", "line": 2},  # no such state
        {"kind": "lane", "lane": 1, "label": "x" * 500, "type": "task"},  # label cut to 120
        {"kind": "state", "lane": 1, "state": "waiting", "line": 9, "label": "await asyncio.sleep"},
        {"kind": "state", "lane": 0, "state": "done", "line": None},
    ]
    payload = "\n".join(json.dumps(line) for line in lines) + "\nnot json\n[1, 2]\n" + "{" * 2000 + "\n"
    code = f"import os\nos.write(3, {payload.encode()!r})\n"
    outcome, events = run(code)
    traced = [{k: v for k, v in event.items() if k != "t"} for event in events if event["kind"] in ("lane", "state")]
    assert traced == [
        {"kind": "lane", "lane": 0, "label": "main thread", "type": "thread"},
        {"kind": "state", "lane": 0, "state": "running", "line": 2},
        {"kind": "lane", "lane": 1, "label": "x" * 120, "type": "task"},
        {"kind": "state", "lane": 1, "state": "waiting", "line": 9, "label": "await asyncio.sleep"},
        {"kind": "state", "lane": 0, "state": "done", "line": None},
    ]
    assert outcome.trace_lines_dropped == 5 and outcome.lanes == 2


def test_the_trace_relay_caps_lanes_and_states_with_one_note_each():
    events = []

    def emit(kind, **fields):
        events.append({"kind": kind, **fields})
        return 0.0

    relay = sandbox.TraceRelay(emit, clock=lambda: 0.0)
    lanes = b"".join(json.dumps({"kind": "lane", "lane": n, "label": f"t{n}", "type": "task"}).encode() + b"\n"
                     for n in range(70))
    state = json.dumps({"kind": "state", "lane": 3, "state": "running", "line": 1}).encode() + b"\n"
    data = lanes + state * (sandbox.MAX_STATE_EVENTS + 5)
    for start in range(0, len(data), 1000):  # lines split across reads, as a pipe delivers them
        relay.feed(data[start:start + 1000])
    relay.finish()
    kinds = [event["kind"] for event in events]
    assert kinds.count("lane") == sandbox.MAX_LANES and kinds.count("state") == sandbox.MAX_STATE_EVENTS
    notes = [event["text"] for event in events if event["kind"] == "note"]
    assert len(notes) == 2 and "64" in notes[0] and "20,000" in notes[1]


def test_the_tracer_s_own_cap_line_becomes_one_note_for_the_reader():
    events = []

    def emit(kind, **fields):
        events.append({"kind": kind, **fields})
        return 0.0

    relay = sandbox.TraceRelay(emit, clock=lambda: 0.0)
    cap = json.dumps({"kind": "cap", "lane": 0, "what": "lanes"}).encode() + b"\n"
    relay.feed(cap * 3 + json.dumps({"kind": "cap", "lane": 0, "what": "anything"}).encode() + b"\n")
    relay.finish()
    assert [(event["kind"], event["text"]) for event in events] == [("note", sandbox.CAP_NOTES["lanes"])]
    assert "only the first 64 are drawn" in sandbox.CAP_NOTES["lanes"]


def test_a_missing_bubblewrap_and_one_that_cannot_make_namespaces_are_named():
    missing = sandbox.unavailable_reason("/nonexistent/bwrap")
    assert missing is not None and "/nonexistent/bwrap is missing" in missing
    broken = sandbox.unavailable_reason("/bin/false")
    assert broken is not None and "cannot create its namespaces" in broken
    with pytest.raises(sandbox.SandboxUnavailable):
        sandbox.run_program("print(1)", RunEmitter(EventRecorder(), time_limit_s=5), bwrap="/nonexistent/bwrap")


def test_a_cancelled_run_kills_its_sandbox_and_a_detached_grandchild_dies_with_it():
    recorder = EventRecorder()
    emitter = RunEmitter(recorder, time_limit_s=30)
    threading.Timer(1.0, emitter.stop_requested.set).start()
    code = """
import os, time
if os.fork() == 0:
    os.setsid()
    if os.fork() == 0:
        time.sleep(60)
    os._exit(0)
print("started", flush=True)
time.sleep(60)
"""
    with pytest.raises(RunCancelled):
        run(code, emitter=emitter)
    assert "started" in output_of(recorder.stored, "stdout")
    assert sandbox_processes() == []


def test_a_program_that_closes_its_output_still_meets_the_wall_limit():
    code = "import os, time\nos.close(1)\nos.close(2)\nos.close(3)\ntime.sleep(60)\n"
    outcome, _ = run(code, limits=dataclasses.replace(LIMITS, wall_s=1.0))
    assert outcome.killed_reason == "time" and outcome.exit_code is None
    assert 1000 <= outcome.wall_ms < 4000
    assert sandbox_processes() == []


def test_processes_that_together_pass_the_memory_limit_are_stopped_for_memory():
    # Each stays under the per-process address-space cap; only the watch over the whole run catches them.
    code = """
import os, time
for _ in range(4):
    if os.fork() == 0:
        block = bytearray(b"x" * 200 * 2**20)
        time.sleep(30)
time.sleep(30)
"""
    outcome, _ = run(code, limits=dataclasses.replace(LIMITS, wall_s=10.0, cpu_s=5, tasks=48))
    assert outcome.killed_reason == "memory" and outcome.exit_code is None
    assert outcome.peak_memory_bytes > sandbox.Limits().memory_bytes
    assert sandbox_processes() == []


def test_a_tracer_runs_the_program_as_main_with_fd_3_open_and_the_programs_own_line_numbers():
    # A stand-in with the real tracer's calling convention (python3 -I -X utf8 /sandbox/tracer.py /sandbox/main.py).
    tracer = """
import json, os, runpy, sys
os.write(3, (json.dumps({"kind": "lane", "lane": 0, "label": "main thread", "type": "thread"}) + "\\n").encode())
os.write(3, (json.dumps({"kind": "state", "lane": 0, "state": "running", "line": 1}) + "\\n").encode())
print("tracing", sys.argv[1:], sys.flags.isolated, sys.flags.utf8_mode)
runpy.run_path(sys.argv[1], run_name="__main__")
"""
    outcome, events = run("print(__name__)\nraise ValueError('from the program')\n", limits=LIMITS, tracer=tracer)
    assert output_of(events, "stdout") == "tracing ['/sandbox/main.py'] 1 1\n__main__\n"
    assert 'File "/sandbox/main.py", line 2' in output_of(events, "stderr")
    assert output_of(events, "stderr").endswith("ValueError: from the program\n")
    assert outcome.exit_code == 1 and outcome.lanes == 1
    assert [event["kind"] for event in events if event["kind"] in ("lane", "state")] == ["lane", "state"]


WORKER_THAT_DIES = """
import json, sys, time
import django
django.setup()
from demos.library.playground import sandbox
box = sandbox.Sandbox("import time\\ntime.sleep(60)\\n", sandbox.Limits(wall_s=60, nice=0, cpu_shares=0),
                      runtime=sandbox.Runtime.of_this_interpreter(), bwrap=sandbox.bwrap_path(), tracer=None)
box.start()
deadline = time.monotonic() + 10
while box.init_pid is None and time.monotonic() < deadline:
    box.read_status()
    time.sleep(0.01)
print(json.dumps({"bwrap": box.process.pid, "init": box.init_pid, "uid": box.uid}), flush=True)
time.sleep(60)
"""


def test_a_worker_killed_mid_run_takes_its_sandbox_with_it():
    worker = subprocess.Popen([sys.executable, "-c", WORKER_THAT_DIES], cwd=settings.BASE_DIR, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "DJANGO_SETTINGS_MODULE": "coursesite.settings.test"})
    try:
        started = json.loads(worker.stdout.readline())
        assert os.path.exists(f"/proc/{started['bwrap']}") and started["init"] is not None
        worker.kill()  # no finally, no cleanup: as an OOM kill or a SIGKILL from outside would leave it
        worker.wait(timeout=10)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and (_alive(started["bwrap"]) or sandbox.processes_of(started["uid"])):
            time.sleep(0.05)
        assert not _alive(started["bwrap"]) and sandbox.processes_of(started["uid"]) == []
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()


def _alive(pid: int) -> bool:
    """A process that exists and is not a zombie waiting for its parent to reap it."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False
