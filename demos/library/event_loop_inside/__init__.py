"""Inside the event loop: a real asyncio loop, watched one iteration at a time.

The loop is CPython's own `asyncio.SelectorEventLoop`, made fresh inside `run`
(in a worker thread, never the site's loop), with two pieces of instrumentation
(instrumented_loop.py) and nothing re-implemented:

- its selector is a `selectors.DefaultSelector` subclass (epoll on Linux) whose
  `select(timeout)` records the timeout the loop passed, how long the call
  really slept and which file descriptors it reported;
- the loop subclass wraps `_run_once`, the private method that is one
  iteration, reading the private ready queue (`_ready`) and timer heap
  (`_scheduled`) before each iteration; `_ready` is swapped for a deque
  subclass that notes each callback as the loop takes it off the queue, so the
  demo knows exactly which callbacks ran, in which iteration, for how long.

The workload, spread over about 2 s of loop time:

- `clients` stream connections over real loopback TCP sockets to an "upstream"
  echo server (upstream.py). The upstream is a plain blocking socket server running in
  threads of its own (standing in for a remote service); it waits
  `REPLY_DELAY_S` with `time.sleep` in its own thread, never on the loop, then
  writes the line back. So when a reply comes, the kernel marks the client's
  socket readable and epoll wakes the sleeping loop: the OS literally tells it.
- `len(TIMERS_DUE_S)` plain timer callbacks, scheduled with `loop.call_at`;
  each records how late it ran.
- one task that wakes with `asyncio.sleep` at `SLEEPER_WAKES_S` (a sleep is
  also just a timer on the heap) and records how late it resumed.
- when `blocking_ms` > 0, one callback at `BLOCK_AT_S` that calls
  `time.sleep(blocking_ms)` on the loop thread: the mistake the lesson warns
  about. Three of the timers and one of the sleeper's wake-ups are due just
  behind it. (The schedule and the actors are in workload.py.)

Slowed down to follow, how: nothing is added to the loop to slow it (a pause
inside the loop would itself be a blocking callback and falsify every number
shown). The workload is sparse instead: something happens every 40 to 150 ms,
so a run has some 50 to 90 iterations, each streamed as it ends, and most of
the 2 s is the loop genuinely asleep in select().

Per iteration the stream carries a log line (ready queue length, timers
pending and the next deadline, the timeout passed to select(), how long it
slept, the sockets it reported, the callbacks that ran), metrics
(`select_timeout_ms`, `select_slept_ms`, `callbacks_run`, and `timer_late_ms`
per timer) and counters. Lanes: the loop thread (blocked, asleep inside select(),
running callbacks, blocked in the blocking callback), each client socket
(waiting for its echo; queued while the reply sits unread in the kernel), the
sleeping task and each timer (waiting until due; queued while overdue).

Summary keys:

- `iterations`: how many times `_run_once` ran while the workload did.
- `select_calls`: select() calls in those iterations (one per iteration), split
  into `select_timed_out` (slept its whole timeout, nothing ready),
  `select_woken_by_io` (a socket became readable before the timeout ran out)
  and `select_immediate` (timeout 0: a callback was already waiting).
- `mean_select_timeout_ms`, `max_select_timeout_ms`: over the calls given a
  timeout above 0 (one is the workload's 8 s watchdog timer).
- `mean_select_overshoot_ms`, `max_select_overshoot_ms`: how much longer than
  its timeout select() slept, over the timed-out calls; `select_overshoots`
  is how many that was.
- `max_io_wake_ms`: for replies written while the loop was inside select(),
  the longest time from the upstream writing to select() returning;
  `io_wakes` is how many such replies there were.
- `sockets_ready_total`: file descriptors select() reported, summed.
- `timers_fired`: the timer callbacks and sleep wake-ups that ran;
  `max_timer_late_ms` the latest of them (a sleeping task's lateness includes
  the one extra iteration a task needs to resume after its timer fires);
  `timers_behind_block` how many were due while the blocking callback ran;
  `max_timer_late_unblocked_ms` the latest of the others, the run's baseline.
- `longest_iteration_busy_ms`: the longest time one iteration spent outside
  select(), running its callbacks; `mean_iteration_busy_ms` the mean.
- `blocking_ms`: the blocking callback's requested length (0: none), and
  `blocking_callback_ms` how long it really held the loop.
- `text`: the claim, in words, from those numbers.
"""

import asyncio
import statistics
import time
from typing import Any

from demos.base import Emit
from demos.params import IntParam

from .instrumented_loop import InstrumentedLoop
from .reporter import Reporter
from .upstream import EchoUpstream
from .workload import REPLY_DELAY_S, Lanes, Workload

slug = "event-loop-inside"
title = "Inside the event loop, one turn at a time"
concept = ("Each turn the loop runs what is ready, then sleeps in select() until the next timer is due or a socket "
           "has data; a callback that blocks stretches its turn and makes every timer behind it late.")
placement = "worker"  # it installs its own loop subclass and blocks that loop on purpose: a sandbox loop in a worker
time_limit_s = 30.0
lanes = "actor"
headline = ("select_calls", "select_woken_by_io", "max_timer_late_ms")
summary_fields = {
    "iterations": ("Loop iterations", ""), "select_calls": ("select() calls", ""),
    "select_timed_out": ("select() calls that timed out", ""), "select_woken_by_io": ("select() calls woken by I/O", ""),
    "select_immediate": ("select() calls that returned at once", ""),
    "mean_select_timeout_ms": ("Mean select() timeout", "ms"), "max_select_timeout_ms": ("Longest select() timeout", "ms"),
    "io_wakes": ("Wakes by a socket", ""), "max_io_wake_ms": ("Slowest wake by a socket", "ms"),
    "sockets_ready_total": ("Sockets ready, all wakes", ""), "timers_fired": ("Timers fired", ""),
    "max_timer_late_ms": ("Latest timer", "ms"), "timers_behind_block": ("Timers held up by the block", ""),
    "longest_iteration_busy_ms": ("Longest busy iteration", "ms"), "blocking_ms": ("Blocking callback asked for", "ms"),
}
waits = "real socket round trips to a server thread, and timers"
lane_states = frozenset({"running", "waiting", "queued", "blocked", "done"})
params = (
    IntParam("blocking_ms", 200, 0, 500, label="Blocking callback (ms)",
             help="A callback 1 s in calls time.sleep for this long on the loop thread; 0 leaves it out."),
    IntParam("clients", 2, 1, 3, label="Client sockets",
             help="How many loopback TCP connections send lines to the echo upstream."),
)
# Small enough for the test suite's run over every demo (the schedule is fixed, so this still takes about 2 s).
smoke_params = {"blocking_ms": 0, "clients": 1}
NOISE_MS = 10.0  # a timer this late with nothing blocking means the machine, not the loop, held it up


def run(params: dict[str, Any], emit: Emit) -> dict[str, Any]:
    """Run the workload on a fresh instrumented loop in this worker thread; return what the loop did."""
    blocking_s, clients = params["blocking_ms"] / 1000, params["clients"]
    lanes = Lanes(clients)
    mono_origin = time.monotonic()
    origin_ms = emit("lanes", count=lanes.count, labels=lanes.labels())

    def run_ms(moment: float) -> float:
        return origin_ms + (moment - mono_origin) * 1000

    workload = Workload(lanes, blocking_s)
    upstream = EchoUpstream(REPLY_DELAY_S)
    reporter = Reporter(emit, workload, upstream, run_ms)
    upstream.start()
    loop = InstrumentedLoop(reporter)
    try:
        with asyncio.Runner(loop_factory=lambda: loop) as runner:
            try:
                runner.run(workload.main(upstream.port))
            finally:
                loop.on_iteration = None  # asyncio's clean-up turns are not the workload's
    finally:
        upstream.close()
    emit("state", t=run_ms(time.monotonic()), lane=lanes.loop, state="done")
    return summarise(reporter, workload, params)


def summarise(reporter: Reporter, workload: Workload, params: dict[str, Any]) -> dict[str, Any]:
    """The measured claim, in numbers and in words."""
    iterations = reporter.iterations
    calls = [iteration.select for iteration in iterations]
    timed_out = [call for call in calls if not call.ready_fds and call.timeout]
    woken_by_io = [call for call in calls if call.ready_fds and call.timeout != 0]
    immediate = [call for call in calls if call.timeout == 0]
    timeouts_ms = [call.timeout * 1000 for call in calls if call.timeout]
    overshoots_ms = [(call.returned - call.entered - call.timeout) * 1000 for call in timed_out if call.timeout]
    busy_ms = [iteration.busy_s * 1000 for iteration in iterations]

    span = workload.block_span
    behind_block = [late for _what, due, late in workload.timer_lateness if span and span[0] <= due < span[1]]
    unblocked = [late for _what, due, late in workload.timer_lateness if not (span and span[0] <= due < span[1])]
    block_ms = round((span[1] - span[0]) * 1000, 1) if span else 0.0
    longest_ms = round(max(busy_ms, default=0.0), 1)
    max_late_ms = round(max((late for *_rest, late in workload.timer_lateness), default=0.0) * 1000, 1)
    max_unblocked_ms = round(max(unblocked, default=0.0) * 1000, 1)
    max_behind_ms = round(max(behind_block, default=0.0) * 1000, 1)
    mean_overshoot_ms = round(statistics.fmean(overshoots_ms), 2) if overshoots_ms else 0.0
    max_overshoot_ms = round(max(overshoots_ms, default=0.0), 2)
    max_io_wake_ms = round(max(reporter.io_wakes_s, default=0.0) * 1000, 2)

    text = (f"The loop went round {len(iterations)} times, each time running what was ready and then sleeping in "
            f"select() until the next timer or socket: the {len(timed_out)} selects that ran out their timeout "
            f"overslept it by {mean_overshoot_ms:.2f} ms on average (max {max_overshoot_ms:.1f} ms), and each of the "
            f"{len(reporter.io_wakes_s)} replies that arrived during a select woke it at most {max_io_wake_ms:.2f} ms "
            f"after the upstream wrote it.")
    if span:
        text += (f" The {params['blocking_ms']} ms blocking callback held the loop for {block_ms:.0f} ms, stretching "
                 f"one iteration to {longest_ms:.0f} ms of callbacks; the {len(behind_block)} timers due behind it "
                 f"ran up to {max_behind_ms:.0f} ms late, against at most {max_unblocked_ms:.1f} ms for the other "
                 f"{len(unblocked)}.")
    else:
        text += (f" With no blocking callback the longest iteration spent {longest_ms:.1f} ms running callbacks, and "
                 f"no timer of {len(unblocked)} ran more than {max_unblocked_ms:.1f} ms late.")
    if max_unblocked_ms > NOISE_MS:
        text += (f" A timer ran {max_unblocked_ms:.0f} ms late with nothing blocking the loop: the machine was busy, "
                 f"so read those delays as noise.")
    return {
        "text": text,
        "iterations": len(iterations),
        "select_calls": len(calls),
        "select_timed_out": len(timed_out),
        "select_woken_by_io": len(woken_by_io),
        "select_immediate": len(immediate),
        "mean_select_timeout_ms": round(statistics.fmean(timeouts_ms), 1) if timeouts_ms else 0.0,
        "max_select_timeout_ms": round(max(timeouts_ms, default=0.0), 1),
        "select_overshoots": len(overshoots_ms),
        "mean_select_overshoot_ms": mean_overshoot_ms,
        "max_select_overshoot_ms": max_overshoot_ms,
        "io_wakes": len(reporter.io_wakes_s),
        "max_io_wake_ms": max_io_wake_ms,
        "sockets_ready_total": reporter.sockets_ready_total,
        "timers_fired": len(workload.timer_lateness),
        "max_timer_late_ms": max_late_ms,
        "timers_behind_block": len(behind_block),
        "max_timer_late_unblocked_ms": max_unblocked_ms,
        "longest_iteration_busy_ms": longest_ms,
        "mean_iteration_busy_ms": round(statistics.fmean(busy_ms), 2) if busy_ms else 0.0,
        "blocking_ms": params["blocking_ms"],
        "blocking_callback_ms": block_ms,
    }


# "Edit and run" opens this program: the idea above in a few lines of standard-library Python that a
# reader can change and run (the sandbox has no network and no database: timers, threads, processes).
starting_program = '''\
import asyncio
import time


async def main():
    loop = asyncio.get_running_loop()
    started = loop.time()

    def say(what):
        print(f"{(loop.time() - started) * 1000:5.0f} ms  {what}")

    loop.call_later(0.2, say, "timer due at 200 ms")
    loop.call_later(0.1, say, "timer due at 100 ms")
    loop.call_soon(say, "call_soon: on the loop's next turn")
    loop.call_later(0.15, time.sleep, 0.1)  # a blocking callback: the 200 ms timer runs late
    say("main() before its first await")
    await asyncio.sleep(0.3)
    say("main() resumes after its sleep")


asyncio.run(main())
'''
