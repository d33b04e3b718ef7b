"""The site's process table: what runs where, and exactly how each process starts.

`coursesite.stack` (make run), the test fixtures and the README's "What runs
where" all read this one table, so a test's Daphne is started the way the
site's is. Job queues come from what the demos declare (`queues`), never
from a name written here.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

BIN_DIR = Path(sys.executable).parent
# Twisted's default listen backlog is 50: a burst of readers would be refused. While a Daphne pauses
# accepting (its loop running late, coursesite/server_limits.py) a burst waits here. Measured one after the
# other on the 2-core box: at 1,024, 48 of 5,000 and 3,876 of 10,000 arriving readers broke before their
# handshake; at 4,096, 0 and 2,712. Linux caps it at net.core.somaxconn (4,096 by default since 5.4).
LISTEN_BACKLOG = 4096
ASGI_APPLICATION = "coursesite.asgi:application"
# The queue demo runs are sent to (Celery's default queue).
DEMO_RUNS_QUEUE = "celery"
# The upstream's port when nothing else is chosen (the README's table shows it; `make run` picks a free one).
DEFAULT_UPSTREAM_PORT = 8001
# What the README's table shows for the listening socket `make run` hands every Daphne, and for
# the first Daphne's private probe port (`make run` takes whatever descriptor and free ports it gets).
SHOWN_LISTEN_FD = 3
SHOWN_PROBE_PORT = 8002


def default_web_processes() -> int:
    """WEB_PROCESSES when unset: one Daphne per core this process may run on."""
    try:
        return len(os.sched_getaffinity(0)) or 1
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def daphne_name(index: int) -> str:
    """The first Daphne is `daphne`, as with one process; the others `daphne 2`, `daphne 3`, ..."""
    return "daphne" if index == 0 else f"daphne {index + 1}"


@dataclass(frozen=True)
class Process:
    """One long-running process of the site."""

    name: str
    argv: tuple[str, ...]
    does: str  # one line for the README's "What runs where"


@dataclass(frozen=True)
class JobQueueSpec:
    """A Celery queue a demo declares for its own jobs, served by a worker of its own."""

    name: str
    concurrency: int = 2
    pool: str = "prefork"
    does: str = ""


def daphne_endpoint(host: str, port: int) -> str:
    """Twisted's endpoint string for Daphne's listening socket (IPv6 colons escaped)."""
    return f"tcp:port={port}:interface={host.replace(':', chr(92) + ':')}:backlog={LISTEN_BACKLOG}"


def daphne_argv(host: str, port: int, *, listen_fd: int | None = None, probe_port: int | None = None) -> tuple[str, ...]:
    """Daphne, serving HTTP and websockets, exactly as `make run` starts it.

    With `listen_fd` it serves the already listening socket it inherited
    under that descriptor (`make run` opens the site's port once and hands it
    to every Daphne: docs/adr/0017-several-daphne-processes-one-port.md);
    without, it binds `host:port` itself. With `probe_port` it also listens on
    that private 127.0.0.1 port, so the supervisor's probe reaches this very
    process rather than whichever one the kernel hands the connection to.

    Its websocket limits come from the settings: the largest message and
    frame its protocol buffers (bigger ones are refused with 1009 before their
    payload is read) and how long a handshake may take. The limits Daphne has
    no flag for are installed by coursesite.server_limits.
    """
    from django.conf import settings

    max_bytes = str(settings.DEMO_WS_MAX_MESSAGE_BYTES)
    endpoints = ["-e", f"fd:fileno={listen_fd}" if listen_fd is not None else daphne_endpoint(host, port)]
    if probe_port is not None:
        endpoints += ["-e", daphne_endpoint("127.0.0.1", probe_port)]
    return (str(BIN_DIR / "daphne"), *endpoints,
            "--websocket-max-message-size", max_bytes, "--websocket-max-frame-size", max_bytes,
            "--websocket_connect_timeout", str(settings.DEMO_WS_HANDSHAKE_TIMEOUT_S),
            ASGI_APPLICATION)


def upstream_argv(port: int) -> tuple[str, ...]:
    """The upstream that answers demos' network waits after the delay they ask for (demos/upstream.py)."""
    return (str(BIN_DIR / "python"), "-m", "demos.upstream", "--port", str(port))


def demo_worker_argv(*, hostname: str = "worker@%h", concurrency: int = 2, pool: str | None = None,
                     beat_schedule: Path | None = None, loglevel: str = "INFO") -> tuple[str, ...]:
    """The Celery worker for worker-placed demo runs (with beat when a schedule file is given)."""
    argv = [str(BIN_DIR / "celery"), "-A", "coursesite", "worker", "--loglevel", loglevel,
            "-Q", DEMO_RUNS_QUEUE, "--concurrency", str(concurrency), "--hostname", hostname]
    if pool:
        argv += ["-P", pool]
    if beat_schedule is not None:
        argv += ["--beat", "--schedule", str(beat_schedule)]
    return tuple(argv)


def job_worker_argv(queue: JobQueueSpec, *, hostname: str | None = None, loglevel: str = "INFO") -> tuple[str, ...]:
    """A Celery worker fed only from one demo-declared job queue."""
    return (str(BIN_DIR / "celery"), "-A", "coursesite", "worker", "--loglevel", loglevel, "-Q", queue.name,
            "--concurrency", str(queue.concurrency), "-P", queue.pool, "--hostname", hostname or f"{queue.name}@%h")


def site_processes(*, host: str, port: int, run_dir: Path, job_queues: list[JobQueueSpec],
                   upstream_port: int = DEFAULT_UPSTREAM_PORT, listen_fd: int | None = None,
                   probe_ports: list[int] | None = None) -> list[Process]:
    """Every process `make run` supervises, in start order: one Daphne per probe port when given."""
    processes = [
        Process("upstream", upstream_argv(upstream_port),
                "answers the network waits of loop demos after the delay each asks for, over TCP on 127.0.0.1 "
                "(`make run` picks a free port unless UPSTREAM_PORT is set; Daphne reads it from DEMO_UPSTREAM_ADDRESS)"),
    ]
    daphne_probe_ports: list[int | None] = list(probe_ports) if probe_ports else [None]
    for index, probe_port in enumerate(daphne_probe_ports):
        processes.append(Process(
            daphne_name(index), daphne_argv(host, port, listen_fd=listen_fd, probe_port=probe_port),
            "serves pages and the demo websockets; loop-placed demo runs are tasks on its event loop. "
            "`make run` starts WEB_PROCESSES of them (default: one per core), `daphne`, `daphne 2`, ..., all "
            "accepting from the one listening socket it opened on PORT (inherited as `fd:fileno`); each also "
            "listens on a private free port on 127.0.0.1 where the supervisor probes it"))
    processes += [
        Process("celery worker", demo_worker_argv(beat_schedule=run_dir / "celerybeat-schedule"),
                "runs worker-placed demos (anything that blocks, burns CPU or spawns processes); beat sweeps stale runs"),
    ]
    for queue in job_queues:
        processes.append(Process(f"celery worker for {queue.name}", job_worker_argv(queue),
                                 queue.does or f"runs the jobs a demo sends to the {queue.name} queue"))
    return processes


def process_table_markdown(processes: list[Process]) -> str:
    """The README's table of processes, generated from the table itself (a test keeps them equal)."""
    rows = ["| process | started as | what it does |", "|---|---|---|"]
    for process in processes:
        started_as = " ".join(Path(process.argv[0]).name if index == 0 else part for index, part in enumerate(process.argv))
        rows.append(f"| {process.name} | `{started_as}` | {process.does} |")
    return "\n".join(rows)


def readme_processes() -> list[Process]:
    """The process table as the README shows it: `make run`'s defaults, with the demos' declared job queues."""
    from demos.registry import job_queues

    return site_processes(host="127.0.0.1", port=8000, run_dir=Path("var/run"), job_queues=job_queues(),
                          listen_fd=SHOWN_LISTEN_FD, probe_ports=[SHOWN_PROBE_PORT])


if __name__ == "__main__":  # python -m coursesite.processes: print the README's table
    import django

    django.setup()
    print(process_table_markdown(readme_processes()))
