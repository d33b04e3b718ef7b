"""Why one thread can hold ten thousand connections: what a waiting connection costs.

A real server runs in its own process (sandbox.py beside this module) with its
descriptor limit raised, and a client process opens real loopback connections
to it. Every connection sits idle for a while, then sends one request and gets
its answer, and stays open. In `event-loop` mode the server is an
`asyncio.Protocol` on one thread (a transport and one small object per
connection, no task); in `threads` mode it is the standard library's
`socketserver.ThreadingTCPServer`, one OS thread per connection.

The demo reads the server's resident memory and thread count from /proc, and
counts its open sockets, while the connections pile up. A reader should see
the event-loop server hold 10,000 connections on one thread for under 2 KiB
each, and the threaded server pay over ten times that per connection, plus a
whole thread each. Memory per connection is the server's resident-memory
growth (idle, listening server to all connections held) divided by the
connections it holds, counted from its open descriptors.

Each lane's state is measured, not assumed: over every phase (listening,
accepting, answering, ...) the demo reads the process's CPU time (every
thread's, from /proc/<pid>/task/*/schedstat, in nanoseconds) and sets it
against the phase's wall time. A phase in which the process kept at least
half a core busy is drawn `running`, one in which it mostly waited in the
kernel (accept, epoll_wait, recv) `blocked`, and the label says the share.
A phase's state is sent when the phase ends, at the time it began.
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

from demos.params import ChoiceParam, IntParam

slug = "c10k"
title = "Ten thousand connections, one thread"
concept = "A waiting connection on an event loop is a few KB of data; on a thread-per-connection server it is a whole thread."
placement = "worker"  # starts two subprocesses and blocks while it watches them
time_limit_s = 60.0
lanes = "process"
headline = ("connections_held", "rss_bytes_per_connection", "threads_used")
summary_fields = {
    "connections_held": ("Connections held", ""), "rss_bytes_per_connection": ("Memory per connection", "B"),
    "threads_used": ("Server threads at the peak", ""), "elapsed_ms": ("Time taken", "ms"),
    "requests_answered": ("Requests answered", ""), "server_rss_idle_bytes": ("Server memory, idle", "B"),
    "server_rss_held_bytes": ("Server memory, holding them", "B"),
    "projected_mib_at_10000": ("Projected memory at 10,000 connections", "MiB"),
    "server_cpu_ms": ("Server CPU time", "ms"), "client_cpu_ms": ("Client CPU time", "ms"),
}
# Measured per phase (see _Lane): on the CPU for half a core or more, else blocked in the kernel.
lane_states = frozenset({"running", "blocked", "done"})
waits = "real TCP connections between two processes, idle until each sends one request"
params = (
    ChoiceParam("mode", "event-loop", ("event-loop", "threads"), label="Server",
                help="event-loop: one asyncio thread holds every connection; threads: one OS thread per connection."),
    IntParam("connections", 10_000, 10, 10_000, label="Connections",
             help="How many loopback connections the client opens and keeps open."),
    IntParam("thread_cap", 1_000, 10, 2_000, label="Thread cap",
             help="In threads mode, open at most this many connections (one thread each); the figure is extrapolated to 10,000."),
    IntParam("hold_ms", 1_000, 0, 5_000, label="Idle wait (ms)",
             help="How long every connection sits idle before it sends its one request."),
)
smoke_params = {"connections": 200, "hold_ms": 100}

SCRIPT = Path(__file__).with_name("sandbox.py")
SAMPLE_EVERY_S = 0.1
SETTLE_S = 0.1  # let the server finish writing its last answers before the final reading
MIB = 1024 * 1024
CPU_BOUND_SHARE = 0.5  # of one core, over a phase: drawn running from here up


def _read_status(pid: int) -> tuple[int, int]:
    """The process's resident memory in bytes and its number of threads, from /proc."""
    fields = {}
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            name, _, value = line.partition(":")
            fields[name] = value.split()
    if "VmRSS" not in fields:  # a zombie: it has exited and lost its memory
        raise RuntimeError("the sandbox server has exited")
    return int(fields["VmRSS"][0]) * 1024, int(fields["Threads"][0])


def _count_descriptors(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def _cpu_seconds(pid: int) -> float:
    """CPU time every live thread of the process has used, from schedstat (nanoseconds, not clock ticks)."""
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as schedstat:
                total += int(schedstat.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # the thread ended while we looked
    return total / 1e9


class _Lane:
    """One process's lane: each phase's state is what its CPU time over the phase's wall time says."""

    def __init__(self, emit, lane: int, pid: int) -> None:
        self.emit, self.lane, self.pid = emit, lane, pid
        self.phase: tuple[str, float, float, float] | None = None  # label, run time (ms), wall and CPU seconds at its start
        self.cpu_s = 0.0  # over every phase so far

    def enter(self, label: str) -> None:
        """End the phase under way (drawing it as measured) and start the one called `label`."""
        self.close()
        self.phase = (label, self.emit.elapsed_ms(), time.perf_counter(), _cpu_seconds(self.pid))

    def close(self) -> None:
        if self.phase is None:
            return
        label, t, wall_started, cpu_started = self.phase
        self.phase = None
        used = max(0.0, _cpu_seconds(self.pid) - cpu_started)
        self.cpu_s += used
        share = used / max(time.perf_counter() - wall_started, 1e-6)
        state = "running" if share >= CPU_BOUND_SHARE else "blocked"
        self.emit("state", lane=self.lane, state=state, label=f"{label} ({share:.2f} of a core)", t=t)

    def finish(self, label: str) -> None:
        self.close()
        self.emit("state", lane=self.lane, state="done", label=label)


@dataclass
class _Side:
    """One sandbox process (server or client) and the thread forwarding its output."""

    process: subprocess.Popen[str]
    forwarder: threading.Thread


def _start(role_args: list[str], lines: queue.Queue[tuple[str, str | None]], name: str, max_seconds: int) -> _Side:
    """Start one side, with a thread forwarding its output lines (stderr included) to `lines`."""
    process = subprocess.Popen(
        [sys.executable, str(SCRIPT), "--max-seconds", str(max_seconds), *role_args],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    stdout = process.stdout
    assert stdout is not None  # PIPE was asked for

    def forward() -> None:
        with stdout:  # closed here, by its only reader
            for line in stdout:
                lines.put((name, line.strip()))
        lines.put((name, None))

    forwarder = threading.Thread(target=forward, name=f"c10k-{name}-output", daemon=True)
    forwarder.start()
    return _Side(process, forwarder)


def _stop(side: _Side | None) -> None:
    if side is None:
        return
    if side.process.poll() is None:
        side.process.kill()
    side.process.wait(timeout=5)
    side.forwarder.join(timeout=2)


def _decode(line: str) -> dict:
    try:
        message = json.loads(line)
    except ValueError:
        return {"text": line}  # a traceback or warning: kept for the error report
    return message if isinstance(message, dict) else {"text": line}


def run(params, emit):
    mode = params["mode"]
    target = params["connections"] if mode == "event-loop" else min(params["connections"], params["thread_cap"])
    started = time.perf_counter()
    deadline = started + time_limit_s - 8
    max_seconds = int(time_limit_s) + 5
    lines: queue.Queue[tuple[str, str | None]] = queue.Queue()
    server_label = "server: one event loop" if mode == "event-loop" else "server: thread per connection"
    emit("lanes", count=2, labels=[server_label, "client"])
    if target < params["connections"]:
        emit("log", text=f"Threads mode is capped at {target:,} connections (one thread each); the rest is extrapolated.")

    server = client = None
    diagnostics: list[str] = []
    name: str | None  # the side a line came from; None when no line arrived in time
    try:
        server = _start(["server", mode], lines, "server", max_seconds)
        port = None
        while port is None:
            emit.check_cancelled()
            if time.perf_counter() > deadline:
                raise RuntimeError("the sandbox server did not start in time")
            try:
                name, line = lines.get(timeout=SAMPLE_EVERY_S)
            except queue.Empty:
                continue
            if line is None:
                raise RuntimeError(f"the sandbox server exited: {' / '.join(diagnostics)[-300:]}")
            message = _decode(line)
            port = message.get("port")
            if port is None:
                diagnostics.append(message.get("error") or message.get("text", ""))
        baseline_rss, baseline_threads = _read_status(server.process.pid)
        baseline_descriptors = _count_descriptors(server.process.pid)
        server_lane = _Lane(emit, 0, server.process.pid)
        server_lane.enter("listening")
        emit("log", text=f"Idle server: {baseline_rss / MIB:.1f} MiB resident, {baseline_threads} thread(s), "
                         f"descriptor limit {message.get('descriptor_limit'):,}.")

        client = _start(["client", str(port), str(target), str(params["hold_ms"])], lines, "client", max_seconds)
        client_lane = _Lane(emit, 1, client.process.pid)
        client_lane.enter("connecting")
        server_lane.enter("accepting")
        peak_threads = baseline_threads
        answered = 0
        last_sample = 0.0
        finished_at = None
        while True:
            now = time.perf_counter()
            if now > deadline:
                raise RuntimeError(f"the connections were not all answered within {time_limit_s - 8:.0f} s "
                                   f"({answered:,} of {target:,})")
            try:
                name, line = lines.get(timeout=SAMPLE_EVERY_S)
            except queue.Empty:
                name, line = None, ""
            if line is None:
                if name == "client" and finished_at is None:
                    raise RuntimeError(f"the client stopped early: {' / '.join(diagnostics)[-300:] or 'no message'}")
                if name == "server":
                    raise RuntimeError(f"the sandbox server died: {' / '.join(diagnostics)[-300:] or 'no message'}")
            elif line:
                message = _decode(line)
                answered = message.get("answered", answered)
                if "error" in message or "text" in message:
                    diagnostics.append(message.get("error") or message["text"])
                    emit("log", text=f"{name}: {diagnostics[-1]}"[:300])
                stage = message.get("stage")
                if stage == "all_open":
                    client_lane.enter("idle, every connection open")
                elif stage == "requests_sent":
                    client_lane.enter("one request each")
                    server_lane.enter("answering")
                elif stage == "all_answered":
                    client_lane.finish("holding")
                    server_lane.enter("holding every connection")
                    finished_at = now
            if now - last_sample >= SAMPLE_EVERY_S or finished_at is not None:
                last_sample = now
                rss, threads = _read_status(server.process.pid)
                held = _count_descriptors(server.process.pid) - baseline_descriptors
                peak_threads = max(peak_threads, threads)
                emit("metric", name="open_connections", value=held, unit="connections")
                emit("metric", name="server_rss_mib", value=round(rss / MIB, 2), unit="MiB")
                emit("metric", name="server_threads", value=threads, unit="threads")
                emit("counter", name="open_connections", value=held)
                emit("progress", done=min(held, target), total=target)
            if finished_at is not None and now - finished_at >= SETTLE_S:
                break

        held_rss, held_threads = _read_status(server.process.pid)
        held = _count_descriptors(server.process.pid) - baseline_descriptors
        peak_threads = max(peak_threads, held_threads)
        elapsed_ms = (time.perf_counter() - started) * 1000
        server_lane.close()  # measured while the server still runs
    finally:
        _stop(client)
        _stop(server)
    server_lane.finish("stopped")

    growth = held_rss - baseline_rss
    per_connection = growth / held if held > 0 else 0.0
    projected_mib = per_connection * 10_000 / MIB
    summary: dict[str, int | float | str] = {
        "connections_held": held,
        "rss_bytes_per_connection": round(per_connection),
        "threads_used": peak_threads,
        "elapsed_ms": round(elapsed_ms, 1),
        "requests_answered": answered,
        "server_rss_idle_bytes": baseline_rss,
        "server_rss_held_bytes": held_rss,
        "projected_mib_at_10000": round(projected_mib, 1),
        "server_cpu_ms": round(server_lane.cpu_s * 1000, 1),
        "client_cpu_ms": round(client_lane.cpu_s * 1000, 1),
    }
    if mode == "event-loop":
        summary["text"] = (
            f"{peak_threads} thread{'s' if peak_threads > 1 else ''} held {held:,} open connections "
            f"and answered {answered:,} requests; the server grew "
            f"by {growth / MIB:.1f} MiB, about {per_connection / 1024:.1f} KiB per connection."
        )
    else:
        summary["text"] = (
            f"{peak_threads:,} threads held {held:,} connections at about {per_connection / 1024:.1f} KiB each "
            f"({growth / MIB:.1f} MiB in all); 10,000 connections would take about 10,000 threads and "
            f"{projected_mib:.0f} MiB."
        )
    return summary


# "Edit and run" opens this program: the idea above in a few lines of standard-library Python that a
# reader can change and run (the sandbox has no network and no database: timers, threads, processes).
starting_program = '''\
import asyncio
import threading
import time
import tracemalloc

COUNT = 1000


async def idle_connection(ready):
    await ready.wait()  # a connection with nothing to say yet


async def main():
    ready = asyncio.Event()
    tracemalloc.start()
    started = time.perf_counter()
    tasks = [asyncio.create_task(idle_connection(ready)) for _ in range(COUNT)]
    await asyncio.sleep(0.05)
    size, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    print(f"{COUNT} waiting tasks started in {(time.perf_counter() - started) * 1000:.0f} ms, "
          f"about {size / COUNT / 1024:.1f} KiB each (Python objects)")
    ready.set()
    await asyncio.gather(*tasks)


asyncio.run(main())

gate = threading.Event()
started = time.perf_counter()
threads = [threading.Thread(target=gate.wait) for _ in range(20)]
for thread in threads:
    thread.start()
print(f"20 waiting threads started in {(time.perf_counter() - started) * 1000:.0f} ms; "
      "each is an OS thread with a stack of its own")
gate.set()
for thread in threads:
    thread.join()
'''
