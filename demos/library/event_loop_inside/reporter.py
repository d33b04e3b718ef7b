"""Turns each iteration of the instrumented loop into the run's events, and keeps what the summary needs."""
from __future__ import annotations

import collections
import selectors
from collections.abc import Callable

from demos.base import Emit

from .instrumented_loop import Iteration, SelectCall
from .upstream import EchoUpstream
from .workload import Workload, describe_callback

MAX_NAMED_CALLBACKS = 6  # per log line


def _milliseconds(seconds: float) -> float:
    return round(seconds * 1000, 2)


def _format_timeout(timeout: float | None) -> str:
    return "None (no timer: wait for I/O)" if timeout is None else f"{timeout * 1000:.1f} ms"


class Reporter:
    """Turns each iteration into events, and keeps what the summary needs."""

    def __init__(self, emit: Emit, workload: Workload, upstream: EchoUpstream, run_ms: Callable[[float], float]) -> None:
        self.emit = emit
        self.workload = workload
        self.upstream = upstream
        self.run_ms = run_ms
        self.iterations: list[Iteration] = []
        self.io_wakes_s: list[float] = []
        self.sockets_ready_total = 0
        self._replies_seen: dict[int, int] = collections.defaultdict(int)  # client port -> replies accounted for

    def __call__(self, iteration: Iteration) -> None:
        """Stream one iteration: the workload's notes, the loop lane, metrics, counters and a log line."""
        emit, run_ms, workload = self.emit, self.run_ms, self.workload
        self.iterations.append(iteration)
        call = iteration.select
        self.sockets_ready_total += len(call.ready_fds)
        notes, workload.notes = workload.notes, []
        for kind, fields in notes:
            emit(kind, t=run_ms(fields.pop("at")), **fields)

        loop_lane = workload.lanes.loop
        # In select() the loop thread is in a system call, asleep in the kernel: blocked, no CPU (the
        # blocking callback is blocked too, in time.sleep; the labels tell the good sleep from the bad).
        emit("state", t=run_ms(call.entered), lane=loop_lane, state="blocked",
             label=f"asleep inside select(), timeout {_format_timeout(call.timeout)}")
        emit("state", t=run_ms(call.returned), lane=loop_lane, state="running", label="running callbacks")
        names = []
        for handle, started, seconds in iteration.ran:
            name = describe_callback(handle, workload)
            if name.startswith("BLOCKING"):
                emit("state", t=run_ms(started), lane=loop_lane, state="blocked", label="time.sleep in a callback")
                emit("state", t=run_ms(started + seconds), lane=loop_lane, state="running", label="running callbacks")
            names.append(f"{name} ({seconds * 1000:.0f} ms)" if seconds >= 0.001 else name)

        ready_sockets = []
        for fd, events in call.ready:
            client = workload.socket_clients.get(fd)
            how = "readable" if events & selectors.EVENT_READ else "writable"
            ready_sockets.append(f"{'fd ' + str(fd) if client is None else 'socket ' + str(client + 1)} {how}")
            if events & selectors.EVENT_READ:
                self._reply_noticed(fd, call)

        if call.timeout is not None:
            emit("metric", t=run_ms(call.entered), name="select_timeout_ms", value=_milliseconds(call.timeout), unit="ms")
        emit("metric", t=run_ms(call.entered), name="select_slept_ms",
             value=_milliseconds(call.returned - call.entered), unit="ms")
        emit("metric", t=run_ms(call.returned), name="callbacks_run", value=len(iteration.ran), unit="")
        emit("counter", name="iterations", value=iteration.number)
        emit("counter", name="sockets_ready", value=self.sockets_ready_total)
        emit("counter", name="timers_fired", value=len(workload.timer_lateness))

        if iteration.next_deadline is None:
            deadline = "none"
        elif iteration.next_deadline >= iteration.began:
            deadline = f"next due in {(iteration.next_deadline - iteration.began) * 1000:.1f} ms"
        else:
            deadline = f"next overdue by {(iteration.began - iteration.next_deadline) * 1000:.1f} ms"
        shown = names[:MAX_NAMED_CALLBACKS] + ([f"{len(names) - MAX_NAMED_CALLBACKS} more"]
                                                if len(names) > MAX_NAMED_CALLBACKS else [])
        emit("log", t=run_ms(iteration.ended),
             text=(f"#{iteration.number}: ready {iteration.ready_before}, timers {iteration.timers_pending} ({deadline}); "
                   f"select(timeout={_format_timeout(call.timeout)}) slept {(call.returned - call.entered) * 1000:.1f} ms, "
                   f"{len(call.ready_fds)} ready{' (' + ', '.join(ready_sockets) + ')' if ready_sockets else ''}; "
                   f"ran {len(names)}: {', '.join(shown) if shown else 'nothing'}"))

    def _reply_noticed(self, fd: int, call: SelectCall) -> None:
        """A client socket was reported readable: draw the reply's wait in the kernel, time the wake-up."""
        port = self.workload.client_ports.get(fd)
        if port is None:
            return
        sent = self.upstream.sent_at.get(port, [])
        seen = self._replies_seen[port]
        written = None
        while seen < len(sent) and sent[seen] <= call.returned:
            written = sent[seen]
            seen += 1
        self._replies_seen[port] = seen
        if written is None:
            return  # readable for another reason (the upstream hung up)
        lane = self.workload.lanes.socket(self.workload.socket_clients[fd])
        self.emit("state", t=self.run_ms(written), lane=lane, state="queued", label="reply in the kernel, unread")
        if written >= call.entered:
            self.io_wakes_s.append(call.returned - written)
