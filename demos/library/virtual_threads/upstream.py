"""The slow upstream of the virtual-threads demo: a server that answers each request after the delay it asks for.

    python upstream.py --max-seconds S

It stands for whatever a real handler waits on (a database, another
service): a round trip to it is a real loopback socket, and the wait is the
kernel holding the connection while nothing arrives. A request is one line,
`wait <ms> <batch>\\n`. The server holds requests until `<batch>` of them
with the same batch size have arrived, then, `<ms>` milliseconds later,
writes `done <ms>\\n` to each and closes it, so the client sees the answer
and then end of file. The batch is what makes the demo's memory reading
fair: however long the handlers take to start, every one of them is waiting
at the same moment, and the last to arrive still waits the full `<ms>`.

It is the standard library only: one thread, `selectors` (epoll on Linux)
and a heap of deadlines, so its own cost never depends on the mode the
handlers run in, and it never limits how many requests can wait at once. It
prints one JSON line, {"port": P, "descriptor_limit": L}, once it listens,
then stays silent. Like the handler sandbox, it raises its descriptor limit
to the hard limit, dies with its parent and ends itself after --max-seconds.
"""
import argparse
import ctypes
import heapq
import itertools
import json
import resource
import selectors
import signal
import socket
import time

PR_SET_PDEATHSIG = 1
REQUEST_LIMIT_BYTES = 64  # "wait 3000 10000\n" is sixteen bytes; anything longer is not a request
MAX_DELAY_MS = 60_000


def guard_process(max_seconds: int) -> int:
    """Raise the descriptor limit to the hard limit, tie this process to its parent; return the new limit."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the alarm below still applies
        pass
    signal.alarm(max_seconds)  # SIGALRM's default action ends the process
    return hard


def parse_request(request: bytes) -> tuple[int, int] | None:
    """The delay and batch size a request line asks for, or None if it is not `wait <ms> <batch>`."""
    words = request.split()
    if len(words) != 3 or words[0] != b"wait" or not (words[1].isdigit() and words[2].isdigit()) or int(words[2]) < 1:
        return None
    return min(int(words[1]), MAX_DELAY_MS), int(words[2])


def serve(listener: socket.socket) -> None:
    """Accept, read each request line, and answer it once its delay has passed; forever."""
    selector = selectors.DefaultSelector()
    listener.setblocking(False)
    selector.register(listener, selectors.EVENT_READ)
    partial: dict[socket.socket, bytes] = {}
    gathering: dict[int, list[tuple[socket.socket, int]]] = {}  # batch size -> requests held until it is full
    due: list[tuple[float, int, socket.socket, bytes]] = []  # (deadline, tie-breaker, connection, answer)
    order = itertools.count()

    def close(connection: socket.socket) -> None:
        partial.pop(connection, None)
        try:
            selector.unregister(connection)
        except KeyError:
            pass  # already waiting on the heap, not on the selector
        connection.close()

    while True:
        timeout = max(0.0, due[0][0] - time.monotonic()) if due else None
        for key, _ in selector.select(timeout):
            if key.fileobj is listener:
                # Take every connection already queued: a burst of thousands must not sit in the backlog.
                while True:
                    try:
                        connection, _ = listener.accept()
                    except (BlockingIOError, InterruptedError):
                        break
                    connection.setblocking(False)
                    partial[connection] = b""
                    selector.register(connection, selectors.EVENT_READ)
                continue
            if not isinstance(key.fileobj, socket.socket):
                continue  # only sockets are ever registered
            connection = key.fileobj
            try:
                data = connection.recv(REQUEST_LIMIT_BYTES)
            except OSError:
                data = b""
            received = partial.get(connection, b"") + data
            if not data or len(received) > REQUEST_LIMIT_BYTES:
                close(connection)
                continue
            if b"\n" not in received:
                partial[connection] = received
                continue
            request = parse_request(received)
            if request is None:
                close(connection)
                continue
            # From here the connection only waits: off the selector, into its batch, then onto the heap.
            selector.unregister(connection)
            partial.pop(connection, None)
            delay_ms, batch = request
            held = gathering.setdefault(batch, [])
            held.append((connection, delay_ms))
            if len(held) == batch:
                del gathering[batch]
                now = time.monotonic()
                for waiting, its_delay_ms in held:
                    heapq.heappush(due, (now + its_delay_ms / 1000, next(order), waiting, b"done %d\n" % its_delay_ms))
        now = time.monotonic()
        while due and due[0][0] <= now:
            _, _, connection, answer = heapq.heappop(due)
            try:
                connection.send(answer)  # a dozen bytes always fit an empty send buffer
            except OSError:
                pass  # the client gave up; nothing to answer
            connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-seconds", type=int, default=60)
    args = parser.parse_args()
    descriptor_limit = guard_process(args.max_seconds)
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    print(json.dumps({"port": listener.getsockname()[1], "descriptor_limit": descriptor_limit}), flush=True)
    serve(listener)


if __name__ == "__main__":
    main()
