"""The playground: the reader's own concurrent Python, run on the server in a sandbox, traced live.

A reader edits a program (often one of the demos' own, opened with "Edit and
run") and runs it. It runs in a fresh bubblewrap sandbox (sandbox.py beside
this module) with no network, a read-only Python standard library, a small
private /tmp, an unprivileged user and limits on time, CPU, memory,
processes, open files and output; the tracer (tracer.py) turns its asyncio
tasks and threads into timeline lanes as it runs.

A reader should see their program's output, stdout and stderr told apart, as
it is printed; a lane per task and thread, moving between running, waiting at
an await (with its line) and blocked; and, when the program runs into a
limit, the run stopped and the limit named in words. Where the server cannot
run bubblewrap, the run says the playground is off here and why.
"""
from __future__ import annotations

import re
import signal

from demos.base import LANE_STATES
from demos.params import ParamError, TextParam

slug = "playground"
title = "Playground: run your own concurrent Python"
concept = "Change the code and run it: your tasks and threads are drawn as they run, on a real server, in a sandbox."
placement = "worker"  # readers' code never runs in the web process
# The demo that runs a reader's own program: "Edit and run" on every demo opens it (demos/registry.py).
runs_reader_code = True
burns_cpu = True  # a reader's program may compute: one reader's runs take turns on the cores
# The sandbox's own wall limit (CODE_SANDBOX_WALL_S, 10 s by default) stops the program; this engine limit
# is the backstop above it, leaving room for the sandbox to start and to be torn down.
time_limit_s = 40.0
lanes = "task or thread"
lane_states = LANE_STATES  # the tracer may report any of them: the reader's code decides
waits = "whatever your code waits on (it has no network: only timers, pipes, threads, subprocesses are possible)"
headline = ("wall_ms", "cpu_ms", "output_bytes")
summary_fields = {
    "exit_code": ("Exit code", ""), "timed_out": ("Stopped at the wall limit", ""),
    "killed_reason": ("Stopped for", ""), "wall_ms": ("Wall time", "ms"), "cpu_ms": ("CPU time", "ms"),
    "output_bytes": ("Output", "KiB"), "lanes": ("Tasks and threads drawn", ""),
    "trace_lines_dropped": ("Trace lines dropped", ""), "peak_memory_bytes": ("Peak memory", "KiB"),
    "peak_tasks": ("Most processes and threads at once", ""),
}
MAX_CODE_CHARS = 20_000
DEFAULT_CODE = '''import asyncio


async def worker(name, delay):
    print(f"{name} starts")
    await asyncio.sleep(delay)
    print(f"{name} done after {delay} s")


async def main():
    await asyncio.gather(worker("a", 0.3), worker("b", 0.2), worker("c", 0.1))


asyncio.run(main())
'''
params = (
    TextParam("code", DEFAULT_CODE, 1, MAX_CODE_CHARS, label="Your program",
              help="Python 3.11, standard library only; it runs with no network, for at most a few seconds."),
    TextParam("template", "", 0, 60, multiline=False, label="Opened from",
              help="The demo block this program was opened from, if any."),
)
smoke_params = {"code": "import threading\nt = threading.Thread(target=print, args=('hello',))\nt.start()\nt.join()\n"}

_TEMPLATE = re.compile(r"[a-z0-9][a-z0-9-]{0,59}")

# Words for each limit, in the summary's sentence.
LIMIT_WORDS = {
    "time": "it ran past the wall-clock limit of {wall_s:g} s",
    "cpu": "it used up its {cpu_s} s of CPU time",
    "memory": "it ran into the memory limit ({memory_mb} MiB)",
    "output": "it printed more than the output limit of {output_kib:,} KiB",
    "processes": "it ran into the limit of {tasks} processes and threads",
    "files": "it ran into the limit on files (at most {open_files} open at once, {tmp_mb} MiB in /tmp)",
}


def check_params(values: dict) -> None:
    """`template` names a demo block (a slug) or is empty."""
    template = values.get("template", "")
    if template and not _TEMPLATE.fullmatch(template):
        raise ParamError("template must be a demo's slug (lower-case letters, digits and dashes) or empty")


def _tracer_source() -> str | None:
    from demos.library.playground.sandbox import TRACER_PATH

    try:
        return TRACER_PATH.read_text()
    except FileNotFoundError:  # no tracer yet: main.py runs directly, with fd 3 left open and unused
        return None


def summary_text(outcome, limits) -> str:
    """One sentence: how the program ended, and which limit stopped it, in words."""
    seconds = outcome.wall_ms / 1000
    if outcome.killed_reason is not None:
        words = LIMIT_WORDS[outcome.killed_reason].format(
            wall_s=limits.wall_s, cpu_s=limits.cpu_s, memory_mb=limits.memory_bytes // 2**20,
            output_kib=limits.output_bytes // 1024, tasks=limits.tasks, open_files=limits.open_files,
            tmp_mb=limits.tmp_bytes // 2**20)
        if outcome.exit_code is None:
            return f"Your program was stopped after {seconds:.1f} s: {words}."
        return f"Your program ended with exit code {outcome.exit_code} after {seconds:.1f} s: {words}."
    if outcome.exit_code == 0:
        return f"Your program finished in {seconds:.2f} s (exit code 0)."
    if outcome.exit_code is not None and outcome.exit_code < 0:
        try:
            name = f" ({signal.Signals(-outcome.exit_code).name})"
        except ValueError:
            name = ""
        return f"Your program was killed by signal {-outcome.exit_code}{name} after {seconds:.1f} s."
    return f"Your program failed with exit code {outcome.exit_code} after {seconds:.2f} s; its error is in the output."


def run(params, emit):
    """Run the reader's program in a fresh sandbox; the summary says how it ended and which limit, if any, stopped it."""
    from demos.library.playground import sandbox

    limits = sandbox.Limits.from_settings()
    try:
        outcome = sandbox.run_program(params["code"], emit, limits=limits, tracer=_tracer_source())
    except sandbox.SandboxUnavailable as error:
        text = f"The playground is off on this server: {error}. The rest of the site works as usual."
        emit("note", text=text)
        return {"text": text, "available": False, "exit_code": None, "timed_out": False, "killed_reason": None,
                "wall_ms": 0.0, "cpu_ms": 0.0, "output_bytes": 0, "lanes": 0, "trace_lines_dropped": 0}
    return {
        "text": summary_text(outcome, limits),
        "available": True,
        "exit_code": outcome.exit_code,
        "timed_out": outcome.killed_reason == "time",
        "killed_reason": outcome.killed_reason,
        "wall_ms": outcome.wall_ms,
        "cpu_ms": outcome.cpu_ms,
        "output_bytes": outcome.output_bytes,
        "lanes": outcome.lanes,
        "trace_lines_dropped": outcome.trace_lines_dropped,
        "cores_busy": round(outcome.cpu_ms / outcome.wall_ms, 2) if outcome.wall_ms else 0.0,
        "peak_memory_bytes": outcome.peak_memory_bytes,
        "peak_tasks": outcome.peak_tasks,
    }
