"""The playground's tracer: runs the reader's main.py and streams its tasks and threads as lanes.

Run as `python3 -I -X utf8 tracer.py main.py` with file descriptor 3 open for writing (the
relay's pipe). It writes one JSON object per line to fd 3 (the playground contract):

    {"kind": "lane", "lane": 0, "label": "MainThread", "type": "thread"}
    {"kind": "state", "lane": 0, "state": "blocked", "line": 7, "label": "time.sleep"}
    {"kind": "cap", "lane": 0, "what": "lanes"}      (once: a cap was reached, what follows is not drawn)

Standard library only (it runs inside the sandbox with nothing else), Python 3.11 (no
sys.monitoring). What it hooks, and nothing re-implemented:

- every event loop gets a task factory: `BaseEventLoop.__init__` is wrapped so each loop, however
  it is made (asyncio.run, new_event_loop, a loop class called directly), starts with it, and
  `set_task_factory` is wrapped so a factory of the reader's own still runs, beneath ours;
- a done callback on each task tells done, failed (with the exception's type) or cancelled;
- a profile hook (sys.setprofile, and threading.setprofile for new threads) sees each task's
  coroutine resume (running) and suspend (its frame returns at a YIELD_VALUE: waiting, at the line
  of main.py it awaits on; lock-wait when the await chain runs through an asyncio Lock, Semaphore
  or Condition), and sees each thread enter and leave C calls that block (time.sleep, a lock's
  acquire, select/epoll, socket and pipe reads, waitpid, queue gets): blocked, then running;
- the future a task suspends on is what its step yields; when Python code completes that future
  (a c_call of its set_result, set_exception or cancel) the task is ready, drawn queued (if for
  at least 5 ms) until the loop resumes it. A future completed inside C code (a task's own
  result) is not seen, so a task awaiting another task stays waiting until it runs.

Not seen: a `with lock:` statement's wait on a threading lock (the interpreter calls `__enter__`
without a profile event), and C code that blocks inside other C code.

Overhead is bounded: the hook does little outside a task's step; a lane's repeated identical
states are coalesced; a lane writes at most one state per 5 ms except a few changes of kind in
a burst, and a state held back is written by a small flusher thread once it has lasted 5 ms, so
a long wait is always shown and a flicker of short ones is not. At most MAX_LANES lanes and
MAX_STATES state lines are written (the relay's caps); past them the tracer stays quiet.

Whatever happens to the tracer, the reader's program behaves as under plain Python: its
traceback goes to stderr with main.py's frames only (through sys.excepthook, as Python does),
and the exit code is Python's. Without fd 3 the program just runs, untraced.
"""
import _thread
import asyncio
import asyncio.base_events
import asyncio.locks
import inspect
import json
import os
import runpy
import signal
import sys
import threading
import time

TRACE_FD = 3
MAX_LANES = 64
MAX_STATES = 20_000
# The last of the state budget is kept for the lines that end a lane (done, failed).
ENDING_RESERVE = 500
MAX_LABEL = 120
MAX_STATE_LABEL = 80
# A lane writes at most one state per this many seconds, except BURST changes of kind.
MIN_GAP_S = 0.005
BURST = 4
FLUSH_EVERY_S = 0.01
ASYNCIO_DIR = os.path.dirname(asyncio.__file__) + os.sep
YIELD_VALUE = __import__("dis").opmap["YIELD_VALUE"]
BOOTSTRAP_CODE = threading.Thread._bootstrap_inner.__code__  # type: ignore[attr-defined]
LOCK_CODES = frozenset({
    asyncio.locks.Lock.acquire.__code__,
    asyncio.locks.Semaphore.acquire.__code__,
    asyncio.locks.Condition.wait.__code__,
})
# Blocking C calls the profile hook can see, by qualified name (and module, for plain functions).
BLOCKING: dict[tuple[str | None, str], str] = {
    ("time", "sleep"): "time.sleep",
    ("select", "select"): "select",
    (None, "poll.poll"): "poll",
    (None, "epoll.poll"): "epoll.poll",
    (None, "kqueue.control"): "kqueue",
    (None, "lock.acquire"): "lock.acquire",
    (None, "RLock.acquire"): "RLock.acquire",
    (None, "SimpleQueue.get"): "queue get",
    (None, "socket.recv"): "socket.recv",
    (None, "socket.recv_into"): "socket.recv",
    (None, "socket.recvfrom"): "socket.recvfrom",
    (None, "socket._accept"): "socket.accept",
    (None, "socket.connect"): "socket.connect",
    (None, "socket.sendall"): "socket.sendall",
    ("posix", "read"): "os.read",
    ("posix", "readv"): "os.read",
    ("posix", "waitpid"): "os.waitpid",
    ("posix", "wait"): "os.wait",
    ("posix", "waitid"): "os.waitid",
    ("builtins", "input"): "input",
    ("signal", "pause"): "signal.pause",
    ("signal", "sigwait"): "signal.sigwait",
    (None, "BufferedReader.read"): "read",
    (None, "BufferedReader.readline"): "readline",
    (None, "TextIOWrapper.read"): "read",
    (None, "TextIOWrapper.readline"): "readline",
}
ALWAYS_BLOCKS = frozenset({"time.sleep", "signal.pause", "input"})
BLOCKING_BY_NAME: dict[object, str] = {name: label for (module, name), label in BLOCKING.items() if module is None}
BLOCKING_BY_MODULE: dict[object, str] = {key: label for key, label in BLOCKING.items() if key[0] is not None}
AWAITED_NAMES = {"_GatheringFuture": "asyncio.gather", "Future": "a future", "Task": "a task"}
# Code that can suspend (coroutines, generators): only its frames can be in the chain an await unwinds.
SUSPENDABLE = inspect.CO_COROUTINE | inspect.CO_GENERATOR | inspect.CO_ITERABLE_COROUTINE | inspect.CO_ASYNC_GENERATOR
# C methods that complete a future, seen as c_call events when Python code calls them.
RESOLVES_FUTURE = frozenset({"Future.set_result", "Future.set_exception", "Future.cancel"})
SELECTORS_FILE = os.path.join(os.path.dirname(os.__file__), "selectors.py")


class Lane:
    """One task or thread, and what the writer last said about it."""

    __slots__ = ("number", "type", "subject", "announced", "last_key", "last_state", "last_t", "burst",
                 "pending", "pending_since", "ended", "future")

    def __init__(self, number, lane_type, subject):
        self.number = number
        self.type = lane_type
        self.subject = subject  # the Task, or the thread's name
        self.announced = False
        self.last_key = None
        self.last_state = None
        self.last_t = 0.0
        self.burst = 0
        self.pending = None
        self.pending_since = 0.0
        self.ended = False
        self.future = None  # the future a suspended task waits on

    def label(self):
        if self.type == "thread":
            return str(self.subject)[:MAX_LABEL]
        task = self.subject
        coro = task.get_coro()
        name = getattr(coro, "__qualname__", type(coro).__name__)
        return f"{task.get_name()}: {name}()"[:MAX_LABEL]


class Trace:
    """The writer: lanes, the coalescing rules and the caps, over one file descriptor."""

    def __init__(self, fd, main_path):
        self.fd = fd
        self.main_path = main_path
        self.enabled = True
        self.lock = _thread.allocate_lock()
        self.lanes_announced = 0
        self.states_written = 0
        self.task_lanes = {}   # coroutine frame -> Lane, for the tasks being traced
        self.held = set()      # lanes that may have a state held back
        self.waiting_on = {}   # future -> the Lane of the task suspended on it
        self.caps_told = set()  # which caps ("lanes", "states") the relay has been told were reached

    def disable(self):
        self.enabled = False

    def _write(self, obj):
        data = (json.dumps(obj, separators=(",", ":")) + "\n").encode()
        try:
            os.write(self.fd, data)
        except OSError:
            self.enabled = False

    def _tell_cap(self, what):
        """Say once that a cap was reached, so the relay can tell the reader what is not drawn."""
        if what not in self.caps_told:
            self.caps_told.add(what)
            self._write({"kind": "cap", "lane": 0, "what": what})

    def new_lane(self, lane_type, subject):
        """A Lane, or None past the lane cap. It gets its number when its first state is written."""
        if not self.enabled:
            return None
        if self.lanes_announced >= MAX_LANES:
            self._tell_cap("lanes")
            return None
        return Lane(None, lane_type, subject)

    def _announce(self, lane):
        if self.lanes_announced >= MAX_LANES:
            lane.ended = True  # past the cap: this lane is never drawn
            self._tell_cap("lanes")
            return False
        lane.number = self.lanes_announced
        self.lanes_announced += 1
        lane.announced = True
        self._write({"kind": "lane", "lane": lane.number, "label": lane.label(), "type": lane.type})
        return True

    def _emit(self, lane, key, now):
        state = key[0]
        ending = state in ("done", "failed")
        if self.states_written >= MAX_STATES - (0 if ending else ENDING_RESERVE):
            self._tell_cap("states")
            return
        if not lane.announced:
            if not self._announce(lane):
                return
            first = lane.pending
            if first is not None and first != key:  # a lane's first state (queued) is always told
                lane.pending = None
                self._write_state(lane, first)
        self._write_state(lane, key)
        lane.burst = lane.burst + 1 if now - lane.last_t < MIN_GAP_S else 0
        lane.last_key, lane.last_state, lane.last_t = key, state, now
        if lane.pending == key:
            lane.pending = None
        if lane.pending is None:
            self.held.discard(lane)

    def _write_state(self, lane, key):
        state, line, label = key
        record = {"kind": "state", "lane": lane.number, "state": state, "line": line}
        if label:
            record["label"] = label[:MAX_STATE_LABEL]
        self._write(record)
        self.states_written += 1

    def state(self, lane, state, line=None, label=None, hold=False):
        """Say `lane` is now in `state`; written now, or held back by the coalescing rules.

        `hold` keeps even a change of kind back until it has lasted MIN_GAP_S: a lock acquire that
        returns at once is no wait worth drawing, and a task's first state waits for the name
        create_task gives the task after the factory. Held states take no lock (this runs on every
        blocking call of every thread); the flusher writes them.
        """
        if lane is None or lane.ended or not self.enabled:
            return
        key = (state, line, label)
        if key == lane.last_key:
            lane.pending = None
            return
        now = time.monotonic()
        ending = state in ("done", "failed")
        if not ending and (hold or (now - lane.last_t < MIN_GAP_S and (state == lane.last_state or lane.burst >= BURST))):
            if key != lane.pending:
                # in this order, for the flusher that reads them without a lock held by this thread
                lane.pending_since = now
                lane.pending = key
                self.held.add(lane)
            return
        with self.lock:
            lane.ended = ending
            if lane.announced:
                lane.pending = None  # superseded: whatever was held back did not last
            self._emit(lane, key, now)

    def flush(self, everything=False):
        """Write each held state that has lasted MIN_GAP_S (all of them, when `everything`)."""
        if not self.enabled:
            return
        with self.lock:
            now = time.monotonic()
            for lane in list(self.held):
                pending = lane.pending
                if pending is None or lane.ended:
                    self.held.discard(lane)
                elif everything or (now - lane.pending_since >= MIN_GAP_S and now - lane.last_t >= MIN_GAP_S):
                    self._emit(lane, pending, now)

    def flusher(self):
        while self.enabled:
            time.sleep(FLUSH_EVERY_S)
            try:
                self.flush()
            except Exception:  # the tracer's own fault must never reach the reader
                self.enabled = False

    def main_line(self, frame):
        """The line of main.py that `frame` is in, or is called from, or None."""
        depth = 0
        while frame is not None and depth < 64:
            if frame.f_code.co_filename == self.main_path:
                return frame.f_lineno
            frame = frame.f_back
            depth += 1
        return None


class ThreadWatch:
    """The profile hook of one thread: its lane's blocking calls, and the steps of the tasks it runs."""

    def __init__(self, trace, lane):
        self.trace = trace
        self.lane = lane
        self.blocked = False
        self.step_lane: Lane | None = None  # the task whose step this thread is in
        self.step_frame = None
        self.await_line = None   # main.py's innermost frame in the chain now unwinding
        self.await_label = None  # the innermost frame of that chain
        self.await_lock = False

    def hook(self, frame, event, arg):
        # One function, cheapest branches first: it runs on every call and return of the program.
        try:
            trace = self.trace
            if event == "call":
                if self.step_lane is None:
                    lane = trace.task_lanes.get(frame)
                    if lane is not None:
                        if lane.future is not None:
                            trace.waiting_on.pop(lane.future, None)
                            lane.future = None
                        self.step_lane, self.step_frame = lane, frame
                        self.await_line = self.await_label = None
                        self.await_lock = False
                        trace.state(lane, "running", frame.f_lineno if frame.f_code.co_filename == trace.main_path else None)
                else:
                    self.await_line = self.await_label = None
                    self.await_lock = False
            elif event == "return":
                code = frame.f_code
                if self.step_lane is not None:
                    self.step_return(frame, code, arg)
                elif code is BOOTSTRAP_CODE:
                    trace.state(self.lane, "done", None)
            elif event == "c_call":
                name = getattr(arg, "__qualname__", None)
                if name in RESOLVES_FUTURE:
                    self.future_resolved(getattr(arg, "__self__", None))
                    return
                label = BLOCKING_BY_NAME.get(name)
                if label is None:
                    label = BLOCKING_BY_MODULE.get((getattr(arg, "__module__", None), name))
                if label is not None:
                    self.blocking_call(frame, label)
            elif self.blocked:  # c_return, c_exception
                self.blocked = False
                trace.state(self.lane, "running", trace.main_line(frame))
            if not trace.enabled:
                sys.setprofile(None)
        except Exception:  # a failing hook would be unset by Python and its error raised in the reader's code
            self.trace.disable()
            sys.setprofile(None)

    def blocking_call(self, frame, label):
        filename = frame.f_code.co_filename
        if filename.startswith("<frozen"):
            return  # the import system and runpy reading files, not the program's own waits
        if filename == SELECTORS_FILE:
            label = f"event loop idle ({label})"
        self.blocked = True
        # Most of these often return at once (a free lock, a ready socket): their blocked
        # state is held back until it has lasted MIN_GAP_S. A sleep always blocks.
        self.trace.state(self.lane, "blocked", self.trace.main_line(frame), label, hold=label not in ALWAYS_BLOCKS)

    def future_resolved(self, future):
        """A future got its result: the task suspended on it is ready, queued until the loop resumes it."""
        trace = self.trace
        lane = trace.waiting_on.pop(future, None) if trace.waiting_on else None
        if lane is not None:
            lane.future = None
            line = lane.last_key[1] if lane.last_key else None
            # Held back: shown only when the loop is slow to resume it (a callback blocking it, a long queue).
            trace.state(lane, "queued", line, "ready: its await is done", hold=True)

    def step_return(self, frame, code, arg):
        """A return inside a task's step: part of the chain an await unwinds, or a call that finished."""
        trace = self.trace
        if not (code.co_flags & SUSPENDABLE and code.co_code[frame.f_lasti] == YIELD_VALUE):
            # this frame finished: it is not part of the chain that suspends the task
            self.await_line = self.await_label = None
            self.await_lock = False
            if frame is self.step_frame:
                self.step_lane = self.step_frame = None
            return
        in_main = code.co_filename == trace.main_path
        if self.await_label is None:
            self.await_label = "" if in_main else _frame_label(code)
        if in_main and self.await_line is None:
            self.await_line = frame.f_lineno
        if code in LOCK_CODES:
            self.await_lock = True
        lane = self.step_lane
        if frame is self.step_frame and lane is not None:
            self.step_lane = self.step_frame = None
            # No Python frame of the chain named it (an await on a future or task itself): say what was yielded.
            label = self.await_label or AWAITED_NAMES.get(type(arg).__name__, "")
            trace.state(lane, "lock-wait" if self.await_lock else "waiting", self.await_line,
                        "await " + label if label else "await")
            if asyncio.isfuture(arg):  # what the step yielded to the task: the future it now waits on
                trace.waiting_on[arg] = lane
                lane.future = arg


def _frame_label(code):
    name = code.co_qualname
    if code.co_filename.startswith(ASYNCIO_DIR):
        if name == "__sleep0":
            return "asyncio.sleep(0)"
        return "asyncio." + name
    return name


class Tracer:
    """Installs the hooks and runs main.py as __main__."""

    def __init__(self, trace):
        self.trace = trace
        self.watches = {}

    def watch_this_thread(self, name):
        lane = self.trace.new_lane("thread", name)
        watch = ThreadWatch(self.trace, lane)
        self.trace.state(lane, "running", None)
        sys.setprofile(watch.hook)
        return watch

    def thread_started(self, frame, event, arg):
        """threading.setprofile's hook: the first event of each new thread gives it a lane and its own hook."""
        sys.setprofile(None)
        if self.trace.enabled:
            watch = self.watch_this_thread(threading.current_thread().name)
            watch.hook(frame, event, arg)

    def task_factory(self, reader_factory):
        trace = self.trace

        def factory(loop, coro, context=None):
            if reader_factory is not None:
                task = (reader_factory(loop, coro) if context is None
                        else reader_factory(loop, coro, context=context))
            else:
                task = asyncio.Task(coro, loop=loop, context=context)
            frame = getattr(coro, "cr_frame", None)
            if trace.enabled and not getattr(getattr(coro, "cr_code", None), "co_filename", "").startswith(ASYNCIO_DIR):
                lane = trace.new_lane("task", task)
                if lane is not None:
                    if frame is not None:
                        trace.task_lanes[frame] = lane
                    trace.state(lane, "queued", trace.main_line(sys._getframe(1)), "created", hold=True)
                    task.add_done_callback(lambda done: self.task_done(done, lane, frame))
            return task

        factory.tracer_factory = reader_factory  # type: ignore[attr-defined]
        return factory

    def task_done(self, task, lane, frame):
        self.trace.task_lanes.pop(frame, None)
        if task.cancelled():
            self.trace.state(lane, "done", None, "cancelled")
            return
        error = task.exception()
        if error is None:
            self.trace.state(lane, "done", None)
        else:
            self.trace.state(lane, "failed", self.error_line(error), _error_label(error))

    def error_line(self, error):
        line = None
        tb = error.__traceback__
        while tb is not None:
            if tb.tb_frame.f_code.co_filename == self.trace.main_path:
                line = tb.tb_lineno
            tb = tb.tb_next
        return line

    def install(self):
        tracer = self
        base = asyncio.base_events.BaseEventLoop
        original_init = base.__init__
        original_set = base.set_task_factory
        original_get = base.get_task_factory

        def __init__(loop, *args, **kwargs):
            original_init(loop, *args, **kwargs)
            original_set(loop, tracer.task_factory(None))

        def set_task_factory(loop, factory):
            original_set(loop, tracer.task_factory(factory))

        def get_task_factory(loop):
            return getattr(original_get(loop), "tracer_factory", None)

        setattr(base, "__init__", __init__)  # noqa: B010 (patching a class; mypy refuses the assignment)
        setattr(base, "set_task_factory", set_task_factory)  # noqa: B010
        setattr(base, "get_task_factory", get_task_factory)  # noqa: B010
        threading.setprofile(self.thread_started)
        os.register_at_fork(after_in_child=self.forked)
        _thread.start_new_thread(self.trace.flusher, ())

    def forked(self):
        # A forked child would write into the same pipe; the trace is the parent's.
        self.trace.disable()
        sys.setprofile(None)
        threading.setprofile(None)


def _error_label(error):
    text = f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
    return text[:MAX_STATE_LABEL]


def _reader_traceback(tb, main_path):
    """The traceback from main.py's first frame on: what `python main.py` would have shown."""
    while tb is not None and tb.tb_frame.f_code.co_filename != main_path:
        tb = tb.tb_next
    return tb


def _open_trace(main_path):
    try:
        os.fstat(TRACE_FD)
    except OSError:
        return None
    fd = os.dup(TRACE_FD)  # not inheritable, unlike fd 3: the reader's subprocesses do not get it
    os.close(TRACE_FD)
    return Trace(fd, main_path)


def main(argv):
    if len(argv) != 2:
        print("usage: tracer.py main.py", file=sys.stderr)
        return 2
    main_path = argv[1]
    sys.argv = [main_path]
    if sys.path and not sys.flags.safe_path:
        sys.path[0] = os.path.dirname(os.path.abspath(main_path))
    if not sys.stdout.isatty():
        getattr(sys.stdout, "reconfigure")(line_buffering=True)  # noqa: B009  # output reaches the page as the program prints it
    trace = _open_trace(main_path)
    tracer = Tracer(trace) if trace is not None else None
    watch = None
    if tracer is not None:
        tracer.install()
        watch = tracer.watch_this_thread(threading.current_thread().name)
    try:
        runpy.run_path(main_path, run_name="__main__")
    except SystemExit as stop:
        _main_thread_ended(tracer, watch, None)
        raise stop.with_traceback(None) from None  # Python prints a non-int code and exits 1, as for main.py
    except BaseException as error:
        _main_thread_ended(tracer, watch, error)
        # The hook prints the exception's own __traceback__, so that is where main.py's frames go.
        shown = error.with_traceback(_reader_traceback(error.__traceback__, main_path))
        sys.excepthook(type(error), shown, shown.__traceback__)
        if isinstance(error, KeyboardInterrupt):  # Python ends by SIGINT then, so the parent sees it
            sys.stdout.flush()
            sys.stderr.flush()
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        return 1
    _main_thread_ended(tracer, watch, None)
    return 0


def _main_thread_ended(tracer, watch, error):
    """main.py's module code has ended: the main thread's lane ends there (not at interpreter exit)."""
    sys.setprofile(None)
    if tracer is None or watch is None:
        return
    try:
        if error is None:
            tracer.trace.state(watch.lane, "done", None)
        else:
            tracer.trace.state(watch.lane, "failed", tracer.error_line(error), _error_label(error))
        tracer.trace.flush(everything=True)
    except Exception:
        tracer.trace.disable()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
