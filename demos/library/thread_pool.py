"""A thread pool: as many requests at once as it has threads, the rest queue.

`requests` requests arrive together; each blocks on pretend I/O (a real
`time.sleep` of `wait_ms`, as a synchronous database driver would) and is
served by a `concurrent.futures.ThreadPoolExecutor` of `threads`. A reader
should see each thread's lane take requests in waves, the queue-depth chart
step down once per wave, and the total land near
ceil(requests / threads) × wait_ms: more threads help exactly until there is
one per waiting request.
"""
import math
import threading
import time
from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

from demos.params import IntParam, ParamError

slug = "thread-pool"
title = "A pool of threads serving blocking requests"
concept = "A thread pool serves as many blocking requests at once as it has threads; the rest wait in its queue."
placement = "worker"  # it starts real OS threads that block
time_limit_s = 45.0
lanes = "thread"
headline = ("total_ms", "predicted_ms", "max_queue_wait_ms")
summary_fields = {
    "total_ms": ("Time for every request", "ms"), "predicted_ms": ("ceil(requests / threads) × wait", "ms"),
    "max_queue_wait_ms": ("Longest wait in the queue", "ms"), "peak_threads": ("Most threads busy at once", ""),
    "threads_used": ("Threads used", ""), "requests": ("Requests served", ""),
}
# A pool thread spends its request in time.sleep: blocked in a system call, holding the thread but no CPU.
lane_states = frozenset({"blocked", "done"})
waits = "time.sleep standing in for a blocking database call"
params = (
    IntParam("requests", 12, 1, 200, label="Requests", help="How many requests arrive at once."),
    IntParam("threads", 4, 1, 64, label="Threads", help="The pool's size (max_workers)."),
    IntParam("wait_ms", 500, 10, 3_000, label="Blocking wait (ms)", help="How long each request blocks on its pretend I/O."),
)
# Small enough for the test suite's run over every demo.
smoke_params = {"requests": 4, "threads": 2, "wait_ms": 50}

MAX_PREDICTED_MS = 30_000
CANCEL_CHECK_S = 0.1


def check_params(values):
    """Reject combinations that would outlast the time limit."""
    waves = math.ceil(values["requests"] / values["threads"])
    if waves * values["wait_ms"] > MAX_PREDICTED_MS:
        raise ParamError(f"{waves} waves of {values['wait_ms']} ms would outlast the time limit; "
                         "use fewer requests, more threads or a shorter wait")


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def run(params, emit):
    """Serve every request through a real thread pool; return the measured total and queue waits."""
    request_count, thread_count, wait_s = params["requests"], params["threads"], params["wait_ms"] / 1000
    # The executor starts a thread per submitted request until it reaches max_workers.
    lane_count = min(thread_count, request_count)
    emit("lanes", count=lane_count, labels=[f"thread {number + 1}" for number in range(lane_count)])

    lock = threading.Lock()
    lane_of_thread: dict[int, int] = {}
    queue_waits_ms: list[float] = []
    started_count = 0
    busy = 0
    peak_busy = 0

    def serve(number: int, submitted: float) -> None:
        nonlocal started_count, busy, peak_busy
        began = time.perf_counter()
        with lock:
            lane = lane_of_thread.setdefault(threading.get_ident(), len(lane_of_thread))
            started_count += 1
            queued = request_count - started_count
            busy += 1
            peak_busy = max(peak_busy, busy)
            queue_waits_ms.append((began - submitted) * 1000)
            # Emitted under the lock so the queue-depth series stays in time order.
            emit("state", lane=lane, state="blocked", label=f"request {number + 1}")
            emit("metric", name="queue_depth", value=queued, unit="requests")
        time.sleep(wait_s)  # the blocking I/O: this thread can do nothing else meanwhile
        with lock:
            busy -= 1
            nothing_left = started_count == request_count
        if nothing_left:  # the queue is empty: this thread will not be handed another request
            emit("state", lane=lane, state="done")

    started = time.perf_counter()
    emit("metric", name="queue_depth", value=request_count, unit="requests")
    executor = ThreadPoolExecutor(max_workers=thread_count, thread_name_prefix="demo-pool")
    try:
        futures = [executor.submit(serve, number, time.perf_counter()) for number in range(request_count)]
        pending = set(futures)
        while pending:
            done, pending = wait(pending, timeout=CANCEL_CHECK_S, return_when=FIRST_EXCEPTION)
            for future in done:
                future.result()  # re-raises RunCancelled (or a bug) from the pool thread
            emit.check_cancelled()
        total_ms = (time.perf_counter() - started) * 1000
    finally:
        executor.shutdown(wait=True, cancel_futures=True)

    predicted_ms = math.ceil(request_count / thread_count) * params["wait_ms"]
    max_queue_wait_ms = max(queue_waits_ms, default=0.0)
    threads_used = len(lane_of_thread)
    if max_queue_wait_ms >= 1:
        queue_text = f"the unlucky ones queued for up to {max_queue_wait_ms:.0f} ms before a thread was free"
    else:
        queue_text = "none of them queued"
    text = (f"{_count(threads_used, 'thread')} served {_count(request_count, 'blocking request')} in {total_ms:.0f} ms, "
            f"{total_ms / predicted_ms:.2f} × the {predicted_ms} ms that ceil(requests / threads) × wait predicts; "
            f"at most {peak_busy} ran at once and {queue_text}.")
    return {
        "text": text,
        "total_ms": round(total_ms, 1),
        "predicted_ms": predicted_ms,
        "max_queue_wait_ms": round(max_queue_wait_ms, 1),
        "peak_threads": peak_busy,
        "threads_used": threads_used,
        "requests": len(queue_waits_ms),
    }


# "Edit and run" opens this program: the idea above in a few lines of standard-library Python that a
# reader can change and run (the sandbox has no network and no database: timers, threads, processes).
starting_program = '''\
import time
from concurrent.futures import ThreadPoolExecutor

started = time.perf_counter()


def handle(request):
    began = time.perf_counter() - started
    time.sleep(0.1)  # stands in for a blocking database call
    return request, began


with ThreadPoolExecutor(max_workers=3) as pool:
    futures = [pool.submit(handle, n) for n in range(7)]
    for future in futures:
        request, began = future.result()
        print(f"request {request}: waited {began:.2f} s in the queue, answered at {time.perf_counter() - started:.2f} s")
# Try: max_workers=7, or 1.
'''
