"""Virtual threads in Python: blocking-style handler code, multiplexed by gevent on one OS thread.

One handler, written as a thread-per-request server writes it (plain socket
calls: connect, send, recv until the peer closes; no async, no await), makes
N round trips at once to a slow upstream over real loopback sockets. The
upstream (upstream.py, its own process, standard library only) holds every
request until all N have arrived and then answers each `delay_ms` later, so
every handler is waiting at the same moment and each wait is real: the kernel
holds a socket on which nothing has arrived yet.

The handlers run in a sandbox process of their own (sandbox.py), one of three
ways, chosen by `mode`:

- `threads`: one OS thread per request, each parked in `recv()`; capped at
  `thread_cap`, as the c10k demo caps its threaded server;
- `greenlets`: the same handler after gevent's `monkey.patch_all()`, which
  runs first in that process (never in the worker or the web process): each
  request is a greenlet, each blocking call yields to gevent's hub, and the
  hub waits on every socket in one epoll call on one OS thread;
- `asyncio`: for comparison, the same steps rewritten with `await
  loop.sock_*`, one task per request on one event loop.

The demo reads the sandbox's memory and threads from /proc while it runs. A
reader should see threads mode use a whole OS thread per request and the most
memory, and greenlets run the unchanged blocking code on one OS thread for a
few KiB per waiting request, far nearer the event loop's cost than a
thread's. Memory per request is the growth of the sandbox's resident set,
from idle (after one warm-up round trip) to its peak (VmHWM), divided by the
requests that were waiting at once. What the kernel keeps per thread is not
in the resident set, so threads mode also reports the growth of the kernel's
thread stacks (KernelStack in /proc/meminfo, a system-wide figure) per request.

Both processes need a descriptor per socket: each raises its soft limit to
the hard limit, and if the hard limit is too low for N the demo serves fewer
requests and says so in its summary.
"""
import json
import queue
import resource
import subprocess
import sys
import threading
import time
from pathlib import Path

from demos.base import RunCancelled, RunTimedOut
from demos.params import ChoiceParam, IntParam

slug = "virtual-threads"
title = "Thread-style code on an event loop: greenlets"
concept = ("gevent runs plain blocking handler code as greenlets on one OS thread: thread-per-request code "
           "at a few KiB per waiting request, where an OS thread costs a whole thread.")
placement = "worker"  # starts two subprocesses and blocks while it watches them
time_limit_s = 60.0
lanes = "process"
lane_states = frozenset({"running", "waiting", "blocked", "done", "failed"})
waits = "real socket round trips to an upstream process of its own, which answers after the delay"
headline = ("elapsed_ms", "os_threads", "rss_bytes_per_request")
summary_fields = {
    "elapsed_ms": ("Time for every request", "ms"), "os_threads": ("OS threads in the server process", ""),
    "rss_bytes_per_request": ("Memory per waiting request", "bytes"),
    "kernel_stack_bytes_per_request": ("Kernel stack per waiting request", "bytes"),
    "requests": ("Requests served", ""), "requests_asked": ("Requests asked for", ""),
    "waiting_at_once": ("Requests waiting at once", ""), "delay_ms": ("Upstream delay", "ms"),
    "all_sent_ms": ("Time until every request was sent", "ms"), "idle_rss_bytes": ("Server memory when idle", "bytes"),
    "peak_rss_bytes": ("Server memory at its peak", "bytes"), "socket_class": ("Socket class the handlers used", ""),
    "capped": ("Fewer requests than asked (descriptor limit)", ""),
}
params = (
    ChoiceParam("mode", "greenlets", ("threads", "greenlets", "asyncio"), label="Handlers run on",
                help="threads: one OS thread per request; greenlets: the same code under gevent's monkey-patching; "
                     "asyncio: the same steps with await, one task each."),
    IntParam("requests", 10_000, 10, 10_000, label="Concurrent requests",
             help="How many round trips wait on the slow upstream at once."),
    IntParam("thread_cap", 1_000, 10, 2_000, label="Thread cap",
             help="In threads mode, serve at most this many requests (one OS thread each)."),
    IntParam("delay_ms", 1_000, 100, 3_000, label="Upstream delay (ms)",
             help="How long the upstream holds every request before it answers."),
)
smoke_params = {"requests": 200, "delay_ms": 200}

UPSTREAM_SCRIPT = Path(__file__).with_name("upstream.py")
SANDBOX_SCRIPT = Path(__file__).with_name("sandbox.py")
SAMPLE_EVERY_S = 0.05
DESCRIPTOR_HEADROOM = 64  # the descriptors a process holds besides its sockets, with room to spare
STARTUP_TIMEOUT_S = 15.0
MIB = 1024 * 1024
KIB = 1024


def _read_status(child: "_Child") -> dict[str, int]:
    """The child's resident memory now and at its peak (bytes) and its thread count, from /proc/PID/status."""
    fields = {}
    try:
        with open(f"/proc/{child.pid}/status") as status:
            for line in status:
                name, _, value = line.partition(":")
                fields[name] = value.split()
    except FileNotFoundError:
        pass  # reaped already
    if "VmRSS" not in fields:  # gone, or a zombie that has lost its memory
        child.process.wait(timeout=5)
        raise RuntimeError(f"the {_ROLE[child.name]} died while the requests waited ({child.why_it_ended()})")
    return {"rss": int(fields["VmRSS"][0]) * KIB, "peak_rss": int(fields["VmHWM"][0]) * KIB,
            "threads": int(fields["Threads"][0])}


def _kernel_stack_bytes() -> int | None:
    """The memory Linux holds in kernel stacks, one per thread, system-wide (/proc/meminfo); None if not told."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("KernelStack:"):
                    return int(line.split()[1]) * KIB
    except OSError:
        pass
    return None


class _Child:
    """One subprocess of the demo, with a thread forwarding its output lines to a queue the run reads."""

    def __init__(self, name: str, argv: list[str], lines: queue.Queue) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [sys.executable, *argv], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.diagnostics: list[str] = []  # lines that were not protocol messages: a traceback, a warning
        self._forwarder = threading.Thread(target=self._forward, args=(lines,), name=f"virtual-threads-{name}", daemon=True)
        self._forwarder.start()

    def _forward(self, lines: queue.Queue) -> None:
        assert self.process.stdout is not None
        with self.process.stdout:  # closed here, by its only reader
            for line in self.process.stdout:
                if not line.startswith("{"):  # a traceback or a warning: kept for the error report
                    self.diagnostics.append(line.strip())
                lines.put((self.name, line.strip()))
        lines.put((self.name, None))

    @property
    def pid(self) -> int:
        return self.process.pid

    def send_line(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def why_it_ended(self) -> str:
        """Its exit status and the last words it printed, for an error message."""
        if self.process.poll() is not None:
            self._forwarder.join(timeout=1)  # let its last lines arrive
        said = " / ".join(line for line in self.diagnostics if line)[-300:]
        code = self.process.poll()
        return f"exit status {code}" + (f": {said}" if said else "") if code is not None else said or "no message"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=5)
        if self.process.stdin is not None:
            try:
                self.process.stdin.close()
            except OSError:
                pass  # the pipe is broken: the process is gone anyway
        self._forwarder.join(timeout=2)


def _decode(line: str) -> dict:
    try:
        message = json.loads(line)
    except ValueError:
        return {"text": line}
    return message if isinstance(message, dict) else {"text": line}


def _await_message(children: dict[str, "_Child"], lines: queue.Queue, name: str, key: str, emit) -> dict:
    """The first message from child `name` that has `key`; a clear error if a child reports one or ends first."""
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    while True:
        emit.check_cancelled()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the {_ROLE[name]} did not start within {STARTUP_TIMEOUT_S:.0f} s")
        try:
            sender, line = lines.get(timeout=SAMPLE_EVERY_S)
        except queue.Empty:
            continue
        child = children[sender]
        if line is None:
            child.process.wait(timeout=5)
            raise RuntimeError(f"the {_ROLE[sender]} exited before it was ready ({child.why_it_ended()})")
        message = _decode(line)
        if "error" in message:
            raise RuntimeError(f"the {_ROLE[sender]} could not run: {message['error']}")
        if sender == name and key in message:
            return message


_ROLE = {"upstream": "slow upstream server", "sandbox": "handler sandbox"}
_HANDLER_LABELS = {
    "threads": "handlers: one OS thread per request",
    "greenlets": "handlers: gevent greenlets, one OS thread",
    "asyncio": "handlers: asyncio tasks, one OS thread",
}
_WAITING_STATES = {
    "threads": ("blocked", "every thread blocked in recv()"),
    "greenlets": ("waiting", "greenlets parked in recv(); the hub waits in epoll"),
    "asyncio": ("waiting", "tasks awaiting sock_recv(); the loop waits in epoll"),
}


def run(params, emit):
    """Start the upstream and the handler sandbox, watch the sandbox in /proc, and report what N waits cost."""
    mode, asked, delay_ms = params["mode"], params["requests"], params["delay_ms"]
    notes: list[str] = []
    target = asked
    if mode == "threads" and asked > params["thread_cap"]:
        target = params["thread_cap"]
        notes.append(f"Threads mode served {target:,} of the {asked:,} requests asked for: the thread cap, "
                     f"one OS thread per request.")
    max_seconds = int(time_limit_s) + 5
    emit("lanes", count=2, labels=[_HANDLER_LABELS[mode], f"slow upstream: answers after {delay_ms:,} ms"])

    lines: queue.Queue = queue.Queue()
    children: dict[str, _Child] = {}
    try:
        children["upstream"] = _Child("upstream", [str(UPSTREAM_SCRIPT), "--max-seconds", str(max_seconds)], lines)
        listening = _await_message(children, lines, "upstream", "port", emit)
        emit("state", lane=1, state="waiting", label="listening")

        # Each side holds one socket per request; a hard limit below that caps the run, out loud.
        own_hard_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        limits = [int(listening["descriptor_limit"])]
        if own_hard_limit != resource.RLIM_INFINITY:
            limits.append(own_hard_limit)
        descriptor_ceiling = min(limits) - DESCRIPTOR_HEADROOM
        if descriptor_ceiling < 1:
            raise RuntimeError(f"the descriptor limit ({min(limits):,}) leaves no room for sockets")
        if target > descriptor_ceiling:
            target = descriptor_ceiling
            notes.append(f"Served {target:,} of the {asked:,} requests asked for: the hard descriptor limit here is "
                         f"{min(limits):,} (ulimit -Hn), and every request holds a socket on each side.")
        for note in notes:
            emit("log", text=note)

        children["sandbox"] = _Child("sandbox", [
            str(SANDBOX_SCRIPT), mode, "--port", str(listening["port"]), "--requests", str(target),
            "--delay-ms", str(delay_ms), "--max-seconds", str(max_seconds),
        ], lines)
        emit("state", lane=0, state="running", label="starting; one warm-up round trip")
        ready = _await_message(children, lines, "sandbox", "stage", emit)
        sandbox = children["sandbox"]
        idle = _read_status(sandbox)
        idle["kernel_stack"] = _kernel_stack_bytes() or 0
        emit("log", text=f"Idle handler process: {idle['rss'] / MIB:.1f} MiB resident, {idle['threads']} thread(s); "
                         f"socket.socket is {ready['socket_class']}.")
        sandbox.send_line("go")
        emit("state", lane=0, state="running", label=f"starting {target:,} handlers")
        done, peak_threads = _watch(children, lines, mode, target, emit)
        final = _read_status(sandbox)
    except Exception as error:
        if not isinstance(error, RunCancelled | RunTimedOut):
            emit("state", lane=0, state="failed", label="failed")
        raise
    finally:
        for child in children.values():
            child.stop()
    emit("state", lane=0, state="done", label="every request answered")
    emit("state", lane=1, state="done", label="stopped")
    return _summary(mode, params, target, asked, notes, ready, idle, final, done, peak_threads)


def _watch(children: dict[str, _Child], lines: queue.Queue, mode: str, target: int, emit) -> tuple[dict, int]:
    """Follow the sandbox's progress and its /proc entry until every request has its answer."""
    sandbox = children["sandbox"]
    deadline = time.monotonic() + time_limit_s - 10
    peak_threads = 0
    peak_kernel_stack = 0
    all_waiting = False
    while True:
        emit.check_cancelled()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the round trips were not all answered within {time_limit_s - 10:.0f} s")
        try:
            sender, line = lines.get(timeout=SAMPLE_EVERY_S)
        except queue.Empty:
            sender, line = "", ""
        if line is None:
            child = children[sender]
            child.process.wait(timeout=5)
            raise RuntimeError(f"the {_ROLE[sender]} died while the requests waited ({child.why_it_ended()})")
        message = _decode(line) if line else {}
        if "error" in message:
            raise RuntimeError(f"the {_ROLE[sender]} failed: {message['error']}")
        if message.get("failed"):
            failures = f"{message['failed']:,} round trip(s) failed; the first: {message['first_error']}"
            upstream = children["upstream"]
            if upstream.process.poll() is not None:  # the cause, when it is the upstream that went away
                raise RuntimeError(f"the {_ROLE['upstream']} died while the requests waited "
                                   f"({upstream.why_it_ended()}); {failures}")
            raise RuntimeError(failures)
        status = _read_status(sandbox)
        peak_threads = max(peak_threads, status["threads"])
        peak_kernel_stack = max(peak_kernel_stack, _kernel_stack_bytes() or 0)
        if "in_flight" in message:
            emit("metric", name="requests_waiting", value=message["in_flight"], unit="requests")
            emit("metric", name="sandbox_threads", value=status["threads"], unit="threads")
            emit("metric", name="sandbox_rss_mib", value=round(status["rss"] / MIB, 2), unit="MiB")
            emit("progress", done=message["finished"], total=target)
            # The upstream answers none before the last request arrives, so once all are sent, all wait.
            if not all_waiting and message["sent"] == target:
                all_waiting = True
                state, label = _WAITING_STATES[mode]
                emit("state", lane=0, state=state, label=label)
                emit("state", lane=1, state="waiting", label=f"holding all {target:,} requests")
        if message.get("stage") == "done":
            emit("progress", done=message["finished"], total=target)
            return {**message, "peak_kernel_stack": peak_kernel_stack}, peak_threads


def _summary(mode, params, served, asked, notes, ready, idle, final, done, peak_threads) -> dict:
    """The run's measured figures, and the claim they support in words."""
    delay_ms = params["delay_ms"]
    waiting_at_once = done["peak_in_flight"]
    growth = max(0, final["peak_rss"] - idle["rss"])
    per_request = growth / waiting_at_once if waiting_at_once else 0.0
    elapsed_ms = done["elapsed_ms"]
    # Linux gives every thread a kernel stack (16 KiB on x86-64) and nothing else does, so a sandbox that
    # added no thread added none. The reading is system-wide: a compared run on the same machine starts no
    # threads unless it is in threads mode too, and then both figures take in each other's.
    added_threads = peak_threads > idle["threads"]
    known = added_threads and idle["kernel_stack"] > 0  # 0: this kernel does not report KernelStack
    kernel_stack_growth = max(0, done["peak_kernel_stack"] - idle["kernel_stack"]) if known else 0
    kernel_per_request = kernel_stack_growth / waiting_at_once if waiting_at_once else 0.0
    how = {
        "threads": f"on {peak_threads:,} OS threads (one per request, and the main one)",
        "greenlets": f"as gevent greenlets on {peak_threads:,} OS thread{'s' if peak_threads > 1 else ''}, "
                     "the blocking code unchanged",
        "asyncio": f"as asyncio tasks on {peak_threads:,} OS thread{'s' if peak_threads > 1 else ''}, "
                   "the code rewritten with await",
    }[mode]
    kind = "round trips" if mode == "asyncio" else "blocking-style round trips"
    text = (f"{served:,} {kind} ran {how}, {waiting_at_once:,} of them waiting at once, and the "
            f"process grew by {per_request / KIB:.1f} KiB per waiting request ({growth / MIB:.1f} MiB in all). "
            f"They took {elapsed_ms:,.0f} ms: the upstream's {delay_ms:,} ms delay after the last request arrived, "
            f"and {max(0.0, elapsed_ms - delay_ms):,.0f} ms starting the handlers and opening and closing their connections.")
    if not added_threads:
        text += " No thread was added, so the kernel held no extra thread stacks."
    if mode == "threads" and not known:
        text += " This kernel does not report its thread stacks (KernelStack), so they are not counted."
    elif mode == "threads":
        text += (f" The kernel held another {kernel_per_request / KIB:.1f} KiB per request in thread stacks. "
                 f"At 10,000 requests that is 10,000 threads and about "
                 f"{(per_request + kernel_per_request) * 10_000 / MIB:.0f} MiB.")
    summary = {
        "text": " ".join([text, *notes]),
        "mode": mode,
        "elapsed_ms": elapsed_ms,
        "os_threads": peak_threads,
        "rss_bytes_per_request": round(per_request),
        "kernel_stack_bytes_per_request": round(kernel_per_request),
        "requests": served,
        "requests_asked": asked,
        "waiting_at_once": waiting_at_once,
        "delay_ms": delay_ms,
        "all_sent_ms": done["all_sent_ms"],
        "idle_rss_bytes": idle["rss"],
        "peak_rss_bytes": final["peak_rss"],
        "socket_class": ready["socket_class"],
        "capped": served < asked,
    }
    return summary


# "Edit and run" opens this program: the idea above in a few lines of standard-library Python that a
# reader can change and run (the sandbox has no network and no database: timers, threads, processes).
starting_program = '''\
import heapq
import time

# gevent switches between greenlets inside blocking calls, so the handler code has no `yield`.
# This small scheduler shows the same idea with generators: one thread, switching at each wait.


def handler(name, delay):
    print(f"{name}: request in")
    yield delay  # a "blocking" wait: the scheduler runs another handler meanwhile
    print(f"{name}: answered after {delay} s")


def serve(handlers):
    sleeping = [(time.monotonic(), number, gen) for number, gen in enumerate(handlers)]
    heapq.heapify(sleeping)
    while sleeping:
        wake_at, number, gen = heapq.heappop(sleeping)
        time.sleep(max(0.0, wake_at - time.monotonic()))
        try:
            heapq.heappush(sleeping, (time.monotonic() + next(gen), number, gen))
        except StopIteration:
            pass


started = time.perf_counter()
serve([handler(f"client {n}", 0.2) for n in range(5)])
print(f"5 handlers, one thread: {time.perf_counter() - started:.2f} s, not 5 x 0.2 s")
'''
