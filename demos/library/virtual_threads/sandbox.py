"""The handler process of the virtual-threads demo: N blocking-style round trips, run one of three ways.

    python sandbox.py threads|greenlets|asyncio --port P --requests N --delay-ms D --max-seconds S

`handle_request` below is plain blocking socket code: connect, send one line,
read until the upstream closes. `threads` runs it on one `threading.Thread`
per request, each an OS thread parked in `recv()`. `greenlets` runs the very
same function, one `gevent.spawn` per request as gevent's own servers do, in
a process that gevent has monkey-patched first: `socket.socket` is then
gevent's, so each blocking call parks only its greenlet and hands control to
gevent's hub, which waits on every socket in one epoll call on one OS thread.
(After the patch even `threading.Thread` would start a greenlet.) `asyncio`
is the comparison: the same steps rewritten with `await loop.sock_*`, one task
per request, on one loop.

The patch is the first statement that runs, before any other import, and
only when this file is the program being run (`__main__`) in greenlets mode:
a module that had already taken `socket.socket` or `threading.Lock` would
keep the blocking originals, and nothing that imports this file (a linter, a
test) is ever patched. The site's processes never import gevent.

Protocol with the demo, one JSON object per line on stdout:

- {"stage": "ready", ...} after one warm-up round trip, so the hub or the loop,
  a first thread and the socket machinery already exist in the idle reading;
  then it waits for a line on stdin before starting the N requests;
- {"sent": s, "finished": f, "failed": x, "in_flight": i} about every 0.1 s;
- {"stage": "done", "elapsed_ms": ..., "peak_in_flight": ..., ...} once every
  request has an answer or a failure; then it idles until stdin closes, so the
  demo can read its peak memory from /proc;
- {"error": "..."} before exiting 1, if it cannot run at all.

Like the upstream it raises its descriptor limit to the hard limit, dies with
its parent and ends itself after --max-seconds.
"""
import sys

if __name__ == "__main__" and sys.argv[1:2] == ["greenlets"]:
    try:
        from gevent import monkey
    except ImportError:  # the one message this prologue can give without importing json first
        print('{"error": "gevent is not installed in this Python (see requirements.txt)"}', flush=True)
        sys.exit(1)
    monkey.patch_all()

import argparse  # noqa: E402  (every import after the patch, on purpose)
import asyncio  # noqa: E402
import ctypes  # noqa: E402
import json  # noqa: E402
import resource  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass  # noqa: E402

UPSTREAM_HOST = "127.0.0.1"  # a literal address: nothing to resolve, so no resolver thread in any mode
ANSWER_LIMIT_BYTES = 64
REPORT_EVERY_S = 0.1
DESCRIPTOR_HEADROOM = 32  # stdio, the epoll descriptor, the warm-up socket, a library's odd file
PR_SET_PDEATHSIG = 1


class Tally:
    """What every handler reports: requests sent, finished, failed, and how many wait at once."""

    def __init__(self) -> None:
        # A threading.Lock is an OS lock in threads mode and a gevent lock once patched;
        # asyncio never contends for it, as all its tasks run on one thread.
        self.lock = threading.Lock()
        self.sent = self.finished = self.failed = self.in_flight = self.peak_in_flight = 0
        self.first_error = ""
        self.last_sent_at = self.last_finished_at = 0.0

    def record_sent(self) -> None:
        with self.lock:
            self.sent += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            self.last_sent_at = time.perf_counter()

    def record_finished(self, *, was_sent: bool, error: str = "") -> None:
        with self.lock:
            self.finished += 1
            self.in_flight -= was_sent
            if error:
                self.failed += 1
                self.first_error = self.first_error or error
            self.last_finished_at = time.perf_counter()

    def report(self) -> None:
        emit(sent=self.sent, finished=self.finished, failed=self.failed, in_flight=self.in_flight,
             first_error=self.first_error)


@dataclass(frozen=True)
class Upstream:
    """Where the slow upstream listens and what every request asks of it."""

    port: int
    delay_ms: int
    batch: int  # the upstream starts the delay once this many requests are waiting

    @property
    def request(self) -> bytes:
        return b"wait %d %d\n" % (self.delay_ms, self.batch)

    def check_answer(self, answer: bytes) -> str:
        """'' for the answer the upstream promises, else what went wrong."""
        return "" if answer == b"done %d\n" % self.delay_ms else f"unexpected answer {answer[:40]!r}"


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


# --- the handler: blocking socket calls, as a thread-per-request server writes them -----------------------

def handle_request(upstream: Upstream, tally: Tally) -> None:
    """One round trip to the slow upstream, in plain blocking calls; each call may park this thread."""
    was_sent = False
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as connection:
            connection.connect((UPSTREAM_HOST, upstream.port))
            connection.sendall(upstream.request)
            was_sent = True
            tally.record_sent()
            answer = b""
            while chunk := connection.recv(ANSWER_LIMIT_BYTES):  # the wait: parked until the upstream answers
                answer += chunk
        error = upstream.check_answer(answer)
    except OSError as failure:
        error = f"{failure.__class__.__name__}: {failure}"
    tally.record_finished(was_sent=was_sent, error=error)


def start_thread(upstream: Upstream, tally: Tally) -> None:
    """Run one request on an OS thread of its own, as a thread-per-request server does."""
    try:
        threading.Thread(target=handle_request, args=(upstream, tally), daemon=True).start()
    except RuntimeError as refused:  # "can't start new thread": the ceiling thread-per-request meets
        raise OSError(f"thread {threading.active_count()} could not start: {refused}") from None


def start_greenlet(upstream: Upstream, tally: Tally) -> None:
    """Run one request on a greenlet, as gevent's own servers do (gevent.pywsgi, Gunicorn's gevent worker)."""
    import gevent  # only ever reached in a patched process

    gevent.spawn(handle_request, upstream, tally)


def serve_one_each(start: Callable[[Upstream, Tally], None], upstream: Upstream, requests: int, tally: Tally, *,
                   report: bool = True) -> None:
    """Start `requests` handlers with `start` (a thread or a greenlet each), then wait for all of them."""
    next_report = time.monotonic() + REPORT_EVERY_S
    for _ in range(requests):
        start(upstream, tally)
        if report and time.monotonic() >= next_report:
            tally.report()
            next_report = time.monotonic() + REPORT_EVERY_S
    while tally.finished < requests:
        time.sleep(REPORT_EVERY_S / 10 if not report else REPORT_EVERY_S)  # under gevent, this sleep yields to the hub
        if report:
            tally.report()


# --- the comparison: the same steps as coroutines on one asyncio loop -------------------------------------

async def handle_request_async(upstream: Upstream, tally: Tally) -> None:
    """handle_request rewritten for asyncio: every call that may wait is an `await`."""
    loop = asyncio.get_running_loop()
    was_sent = False
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as connection:
            connection.setblocking(False)
            await loop.sock_connect(connection, (UPSTREAM_HOST, upstream.port))
            await loop.sock_sendall(connection, upstream.request)
            was_sent = True
            tally.record_sent()
            answer = b""
            while chunk := await loop.sock_recv(connection, ANSWER_LIMIT_BYTES):
                answer += chunk
        error = upstream.check_answer(answer)
    except OSError as failure:
        error = f"{failure.__class__.__name__}: {failure}"
    tally.record_finished(was_sent=was_sent, error=error)


async def serve_with_tasks(upstream: Upstream, requests: int, tally: Tally, *, report: bool = True) -> None:
    """One task per request on this loop; report while they wait."""
    tasks = [asyncio.create_task(handle_request_async(upstream, tally)) for _ in range(requests)]
    while tally.finished < requests:
        await asyncio.sleep(REPORT_EVERY_S if report else REPORT_EVERY_S / 10)
        if report:
            tally.report()
    await asyncio.gather(*tasks)


# --- the process around them ------------------------------------------------------------------------------

def guard_process(max_seconds: int) -> int:
    """Raise the descriptor limit to the hard limit, tie this process to its parent; return the new limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the alarm below still applies
        pass
    signal.alarm(max_seconds)
    return hard


def announce_ready(mode: str, descriptor_limit: int, warm_up: Tally) -> None:
    """Say what this process runs on (the socket class proves whether gevent patched it), then wait for 'go'."""
    if warm_up.failed:
        raise OSError(f"the warm-up round trip failed: {warm_up.first_error}")
    emit(stage="ready", mode=mode, descriptor_limit=descriptor_limit,
         socket_class=f"{socket.socket.__module__}.{socket.socket.__qualname__}")
    # A plain blocking read, in every mode: nothing else runs yet, and the demo measures the idle process now.
    if not sys.stdin.readline():
        sys.exit(0)  # the demo went away before starting the requests


def announce_done(tally: Tally, started: float) -> None:
    emit(stage="done", elapsed_ms=round((tally.last_finished_at - started) * 1000, 1),
         all_sent_ms=round((tally.last_sent_at - started) * 1000, 1), sent=tally.sent,
         finished=tally.finished, failed=tally.failed, peak_in_flight=tally.peak_in_flight, first_error=tally.first_error)
    sys.stdin.read()  # hold everything as it is until the demo has read /proc and closes stdin


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("mode", choices=["threads", "greenlets", "asyncio"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--requests", type=int, required=True)
    parser.add_argument("--delay-ms", type=int, required=True)
    parser.add_argument("--max-seconds", type=int, default=60)
    args = parser.parse_args()
    descriptor_limit = guard_process(args.max_seconds)
    if args.requests + DESCRIPTOR_HEADROOM > descriptor_limit:
        emit(error=f"{args.requests:,} sockets need a descriptor limit above {args.requests + DESCRIPTOR_HEADROOM:,}; "
                   f"this process may open {descriptor_limit:,}")
        sys.exit(1)

    warm_up, warm_up_upstream = Tally(), Upstream(args.port, delay_ms=0, batch=1)
    tally, upstream = Tally(), Upstream(args.port, delay_ms=args.delay_ms, batch=args.requests)
    try:
        if args.mode == "asyncio":
            # One Runner keeps one loop across the warm-up, the idle reading and the real run.
            with asyncio.Runner() as runner:
                runner.run(serve_with_tasks(warm_up_upstream, 1, warm_up, report=False))
                announce_ready(args.mode, descriptor_limit, warm_up)
                started = time.perf_counter()
                runner.run(serve_with_tasks(upstream, args.requests, tally))
                announce_done(tally, started)
        else:
            start = start_greenlet if args.mode == "greenlets" else start_thread
            serve_one_each(start, warm_up_upstream, 1, warm_up, report=False)
            announce_ready(args.mode, descriptor_limit, warm_up)
            started = time.perf_counter()
            serve_one_each(start, upstream, args.requests, tally)
            announce_done(tally, started)
    except OSError as error:
        emit(error=f"{error.__class__.__name__}: {error}")
        sys.exit(1)


if __name__ == "__main__":
    main()
