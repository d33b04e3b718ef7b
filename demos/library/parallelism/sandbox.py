"""A worker process for the parallelism demo: some threads taking pieces of work, reporting as they go.

    python sandbox.py WORK FIRST_LANE --rounds R --threads T --queue-fd FD [--queue-fd FD2 ...] --max-seconds S

Every measurement of the demo happens in processes like this one, never in
the Celery worker that runs the demo: that process has threads of its own
(the event pump, and in tests a whole web server) whose turns on the GIL would
blur a comparison of threads. One process with one thread is the baseline;
one process with T threads is `threads` mode; T processes with one thread
each are `processes` mode.

The work of one stretch is a row of pieces, one byte each in a pipe the
parent filled before starting any worker (descriptor FD, inherited): a thread
takes the next piece by reading one byte (a pipe hands each byte to exactly
one reader) and moves on when the pipe is empty. So every stretch does the
same pieces, and a worker that happens to get a slower core takes fewer of
them instead of holding the others up, as a process pool handing out tasks
does. Every piece is R rounds of its work, a size the parent measured in CPU
time. A worker given several pipes (one `--queue-fd` each) works through them
in order, one stretch per start signal, so the parent can time the same
workers several times, in between the stretches of other workers.

Each thread prints a JSON line when it is ready ({"lane", "what", "when",
"pid", "tid"}); then, for every stretch, once a line arrives on stdin (the
start signal, so all its workers begin together) one as it starts its first
piece ("running", with the stretch's number) and one when that stretch's pipe
is empty ("finished", with the stretch's number, the CPU seconds the thread
used on it and the pieces it took). Nothing is printed between: the parent
hears nothing while the work is timed. Times are `time.perf_counter()`, the
system-wide monotonic clock on Linux, so the parent can line them up with its
own. A plain subprocess rather than `multiprocessing`: a Celery prefork worker
is a daemonic process, and those may not start `multiprocessing` children.
"""
import argparse
import ctypes
import hashlib
import json
import os
import signal
import sys
import threading
import time

IO_WAIT_S = 0.2
PR_SET_PDEATHSIG = 1

_print_lock = threading.Lock()


def do_job(work: str, rounds: int) -> None:
    """One unit of work: `cpu` computes while holding the GIL, `hash` computes in C without it, `io` waits."""
    if work == "io":
        time.sleep(IO_WAIT_S)
        return
    if work == "hash":  # OpenSSL's PBKDF2 runs with the GIL released, so threads can share the cores
        hashlib.pbkdf2_hmac("sha256", b"password", b"salt", rounds)
        return
    digest = b"\0" * 32
    for _ in range(rounds):  # hashlib only releases the GIL for inputs of 2 KiB or more: this loop holds it
        digest = hashlib.sha256(digest).digest()


def report(lane: int, what: str, **extra) -> None:
    line = json.dumps({"lane": lane, "what": what, "when": time.perf_counter(), **extra})
    with _print_lock:  # one whole line at a time, whichever thread reports
        print(line, flush=True)


def take_pieces(lane: int, work: str, pieces_fds: list[int], rounds: int, starts: list[threading.Event]) -> None:
    report(lane, "ready", pid=os.getpid(), tid=threading.get_native_id())
    for stretch, (pieces_fd, go) in enumerate(zip(pieces_fds, starts, strict=True)):
        go.wait()
        cpu_started = time.thread_time()
        taken = 0
        while os.read(pieces_fd, 1):  # b"" once every piece of this stretch is taken
            if not taken:
                report(lane, "running", stretch=stretch)
            do_job(work, rounds)
            taken += 1
        report(lane, "finished", stretch=stretch, cpu_s=time.thread_time() - cpu_started, pieces=taken)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("work", choices=["cpu", "hash", "io"])
    parser.add_argument("first_lane", type=int)
    parser.add_argument("--rounds", type=int, default=1, help="rounds of work per piece (cpu and hash)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--queue-fd", type=int, action="append", required=True,
                        help="a pipe of pieces, one byte each; one per stretch, in order")
    parser.add_argument("--max-seconds", type=int, default=60)
    args = parser.parse_args()
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)  # die with the demo
    except (OSError, AttributeError):  # not Linux: the alarm still applies
        pass
    signal.alarm(args.max_seconds)
    starts = [threading.Event() for _ in args.queue_fd]
    threads = [threading.Thread(target=take_pieces,
                                args=(args.first_lane + index, args.work, args.queue_fd, args.rounds, starts))
               for index in range(args.threads)]
    for thread in threads:
        thread.start()
    for go in starts:
        if not sys.stdin.readline():  # the start signal; an empty read means the parent went away
            os._exit(0)  # threads still wait for a signal that will not come: leave without them
        go.set()
    for thread in threads:
        thread.join()
    os._exit(0)


if __name__ == "__main__":
    main()
