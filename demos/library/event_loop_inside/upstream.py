"""The demo's "upstream": a plain blocking TCP echo server in threads of its own.

It stands in for a remote service the loop talks to. Its think time is a
`time.sleep` in its own thread, never on the loop; when it writes a reply,
the kernel marks the client's socket readable and the loop's epoll wakes.
"""
from __future__ import annotations

import collections
import socket
import threading
import time
from collections.abc import Callable
from typing import Any


class EchoUpstream:
    """A plain blocking TCP echo server on 127.0.0.1, one thread per connection.

    It stands in for a remote service: the loop only ever sees its replies
    arrive on a socket. `sent_at[port]` lists, per client (keyed by the
    client's local port), when each reply was written, on the loop's clock.
    """

    def __init__(self, reply_delay_s: float) -> None:
        self.reply_delay_s = reply_delay_s
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)  # so the accept thread notices `close` promptly
        self.port: int = self.listener.getsockname()[1]
        self.sent_at: dict[int, list[float]] = collections.defaultdict(list)
        self._closing = threading.Event()
        self._connections: list[socket.socket] = []
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        """Start accepting connections."""
        self._spawn(self._accept_forever, "echo-upstream-accept")

    def _spawn(self, target: Callable[..., None], name: str, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, name=name, daemon=True)
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept_forever(self) -> None:
        while not self._closing.is_set():
            try:
                connection, address = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # the listener was closed
            connection.settimeout(None)
            with self._lock:
                self._connections.append(connection)
            self._spawn(self._serve, f"echo-upstream-{address[1]}", connection, address[1])

    def _serve(self, connection: socket.socket, client_port: int) -> None:
        with connection, connection.makefile("rb") as lines:
            try:
                for line in lines:
                    time.sleep(self.reply_delay_s)  # in this thread, never on the loop
                    if self._closing.is_set():
                        return
                    self.answer(connection, client_port, line)
            except OSError:
                return  # closed under us by `close`

    def answer(self, connection: socket.socket, client_port: int, line: bytes) -> None:
        """Write `line` back, noting the moment first (so the loop can never see the bytes before the note)."""
        self.sent_at[client_port].append(time.monotonic())
        connection.sendall(line)

    def close(self) -> None:
        """Stop accepting, drop every connection and wait for the threads."""
        self._closing.set()
        self.listener.close()
        with self._lock:
            connections, threads = list(self._connections), list(self._threads)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)  # wakes a thread blocked in recv
            except OSError:
                pass
        for thread in threads:
            thread.join(timeout=2)
