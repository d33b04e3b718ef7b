"""The two processes of the c10k demo: a server that holds connections, and a client that opens them.

    python c10k.py server event-loop|threads --max-seconds S
    python c10k.py client PORT CONNECTIONS HOLD_MS --max-seconds S

The server prints one JSON line, {"port": P}, once it listens, then stays
silent: the demo reads its memory, threads and open descriptors from /proc,
so the server does no bookkeeping that would add to what is measured. Each
connection it accepts is held until the peer closes it; every request on it
gets an answer. Each mode is the standard library's own way to write such a
server: an `asyncio.Protocol` served by `loop.create_server` for the event
loop, `socketserver`'s ThreadingTCPServer for a thread per connection.

The event-loop server uses the protocol layer rather than streams
(`asyncio.start_server`) because that is what an idle connection on a loop
really is: a transport and one protocol object, registered with epoll, with
no task and no suspended coroutine. The streams version adds a reader, a
writer, a task and a coroutine frame to every connection, and roughly triples
the memory per connection (about 5.5 KiB against 1.8 KiB on CPython 3.11).

The client opens CONNECTIONS connections, lets them sit idle for HOLD_MS once
all are open, then sends one request on each and waits for every answer,
keeping the connections open afterwards. It prints JSON lines with its
progress ({"opened": n, "answered": m}) and the moments it reaches each stage.

Both raise their descriptor limit to the hard limit, ask Linux to kill them if
their parent dies, and kill themselves after --max-seconds whatever happens.
"""
import argparse
import asyncio
import ctypes
import json
import resource
import signal
import socket
import socketserver
import sys
import threading
from typing import Any

REQUEST_BYTES = 64
PR_SET_PDEATHSIG = 1


def emit(**fields) -> None:
    print(json.dumps(fields), flush=True)


def guard_process(max_seconds: int) -> None:
    """Raise the descriptor limit, and make sure this process cannot outlive its demo."""
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    except (OSError, AttributeError):  # not Linux: the alarm below still applies
        pass
    signal.alarm(max_seconds)  # the default action of SIGALRM ends the process


def listening_socket() -> socket.socket:
    listener = socket.create_server(("127.0.0.1", 0), backlog=4096)
    emit(port=listener.getsockname()[1], descriptor_limit=resource.getrlimit(resource.RLIMIT_NOFILE)[0])
    return listener


# --- server, event-loop mode: one thread, one small protocol object per connection ---

class EchoProtocol(asyncio.Protocol):
    """One connection on the loop: this object and its transport, called back when bytes arrive."""

    transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)  # a TCP server hands each protocol a full transport
        self.transport = transport
        self.partial_line = b""  # a request split across two reads waits here

    def data_received(self, data: bytes) -> None:
        *requests, self.partial_line = (self.partial_line + data).split(b"\n")
        for request in requests:
            self.transport.write(b"ok " + request + b"\n")


async def serve_on_loop() -> None:
    # A ready-made socket: no host name to resolve, so asyncio starts no helper thread.
    loop = asyncio.get_running_loop()
    server = await loop.create_server(EchoProtocol, sock=listening_socket(), backlog=4096)
    async with server:
        await server.serve_forever()


# --- server, threads mode: the standard library's thread-per-connection server ---

class EchoHandler(socketserver.StreamRequestHandler):
    # The stdlib's line-reading handler. Its buffered reader holds an 8 KiB buffer per
    # connection, which is part of the threads figure (about 26 KiB each; a bare
    # recv() handler measures about 17 KiB): both are several times the loop's cost.
    def handle(self) -> None:
        try:
            while request := self.rfile.readline(REQUEST_BYTES):  # an idle connection parks a thread here
                self.wfile.write(b"ok " + request)
        except ConnectionError:
            pass


class ThreadPerConnectionServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    request_queue_size = 4096

    def server_activate(self) -> None:
        super().server_activate()
        emit(port=self.server_address[1], descriptor_limit=resource.getrlimit(resource.RLIMIT_NOFILE)[0])

    def process_request(self, request, client_address) -> None:
        try:
            super().process_request(request, client_address)
        except RuntimeError as error:  # "can't start new thread": the wall thread-per-connection hits
            emit(error=f"thread {threading.active_count()}: {error}")
            self.shutdown_request(request)


def serve_on_threads() -> None:
    with ThreadPerConnectionServer(("127.0.0.1", 0), EchoHandler) as server:
        server.serve_forever()


# --- client: asyncio in its own process, so its cost never lands on the server ---

async def open_and_hold(port: int, count: int, hold_ms: int) -> None:
    opened = answered = 0
    all_open, go = asyncio.Event(), asyncio.Event()
    connecting = asyncio.Semaphore(256)  # stay inside the server's accept backlog
    held: list[asyncio.StreamWriter] = []

    async def one_connection(index: int) -> None:
        nonlocal opened, answered
        async with connecting:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
        held.append(writer)
        opened += 1
        if opened == count:
            all_open.set()
        await go.wait()
        writer.write(b"request %d\n" % index)
        await writer.drain()
        reply = await reader.read(REQUEST_BYTES + 3)
        if not reply.startswith(b"ok "):
            raise ConnectionError(f"connection {index} got {reply!r}")
        answered += 1

    async def report() -> None:
        last = None
        while True:
            if (opened, answered) != last:
                last = (opened, answered)
                emit(opened=opened, answered=answered)
            await asyncio.sleep(0.1)

    reporter = asyncio.create_task(report())
    connections = asyncio.gather(*(one_connection(index) for index in range(count)))
    waiting_for_all = asyncio.create_task(all_open.wait())
    first_to_finish: list[asyncio.Future[Any]] = [connections, waiting_for_all]
    await asyncio.wait(first_to_finish, return_when=asyncio.FIRST_COMPLETED)
    if connections.done():
        connections.result()  # raises the first connection error
    emit(stage="all_open", opened=opened)
    await asyncio.sleep(hold_ms / 1000)
    emit(stage="requests_sent")
    go.set()
    await connections
    emit(stage="all_answered", opened=opened, answered=answered)
    reporter.cancel()
    await asyncio.Event().wait()  # hold everything open until the demo ends this process


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-seconds", type=int, default=60)
    roles = parser.add_subparsers(dest="role", required=True)
    server = roles.add_parser("server")
    server.add_argument("mode", choices=["event-loop", "threads"])
    client = roles.add_parser("client")
    client.add_argument("port", type=int)
    client.add_argument("connections", type=int)
    client.add_argument("hold_ms", type=int)
    args = parser.parse_args()
    guard_process(args.max_seconds)
    try:
        if args.role == "client":
            asyncio.run(open_and_hold(args.port, args.connections, args.hold_ms))
        elif args.mode == "event-loop":
            asyncio.run(serve_on_loop())
        else:
            serve_on_threads()
    except OSError as error:
        emit(error=f"{error.__class__.__name__}: {error}")
        sys.exit(1)


if __name__ == "__main__":
    main()
