"""Start the whole site, or the test suite, with one command.

    python -m coursesite.stack run            # what `make run` does
    python -m coursesite.stack test [ARGS]    # what `make test` does: pytest ARGS
    python -m coursesite.stack test --split   # `make test SPLIT=1`: the whole suite in two sessions at once

`run` starts PostgreSQL and Redis (embedded, data under var/, unless
DATABASE_URL / REDIS_URL are set), migrates, loads the course when missing,
then supervises WEB_PROCESSES Daphnes (default: one per core) sharing one
listening socket, the Celery workers and the upstream. One Ctrl-C or SIGTERM stops every
process it started, in order, and exits. `test` starts throwaway embedded
servers the same way, runs pytest against them and removes them; with
`--split`, two pytest sessions at once, each against servers of its own
(docs/adr/0020-the-suite-in-two-sessions.md).
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

from coursesite.embedded import EmbeddedPostgres, EmbeddedRedis, free_port, port_is_free, remove_tree
from coursesite.processes import LISTEN_BACKLOG, JobQueueSpec, default_web_processes, site_processes

BASE_DIR = Path(__file__).resolve().parent.parent
# Before settings are loaded (and for `test`): the same default as SUPERVISOR_STOP_GRACE_S.
SHUTDOWN_GRACE_S = 6.0
# Daphne's liveness probe: the cheapest page, asked with a session cookie so the cached-page
# layer does not consult Redis. It then measures Daphne (its loop and its sync thread) alone:
# a Redis or PostgreSQL outage must never get a healthy Daphne killed.
PROBE_PATH = "/hello"
PROBE_COOKIE = "sessionid=supervisor-probe"
TICK_S = 0.5


@dataclass(frozen=True)
class SupervisorPolicy:
    """How `make run` watches its processes (settings SUPERVISOR_*; README, "Operating it")."""

    probe_interval_s: float = 2.0
    probe_timeout_s: float = 1.5
    probe_failures: int = 3
    # A Daphne that misses its probes while it burns CPU is serving a load, not wedged: it gets this many.
    busy_probe_failures: int = 15
    start_timeout_s: float = 30.0
    stop_grace_s: float = SHUTDOWN_GRACE_S
    embedded_restart_delay_s: float = 1.0
    # A process that exited is started again after this pause, so one that dies at once cannot spin.
    restart_delay_s: float = 1.0

    @classmethod
    def from_settings(cls) -> SupervisorPolicy:
        """The policy the site's settings name (call after django.setup())."""
        from django.conf import settings

        return cls(probe_interval_s=settings.SUPERVISOR_PROBE_INTERVAL_S, probe_timeout_s=settings.SUPERVISOR_PROBE_TIMEOUT_S,
                   probe_failures=settings.SUPERVISOR_PROBE_FAILURES,
                   busy_probe_failures=settings.SUPERVISOR_BUSY_PROBE_FAILURES,
                   start_timeout_s=settings.SUPERVISOR_START_TIMEOUT_S,
                   stop_grace_s=settings.SUPERVISOR_STOP_GRACE_S,
                   embedded_restart_delay_s=settings.SUPERVISOR_EMBEDDED_RESTART_DELAY_S,
                   restart_delay_s=settings.SUPERVISOR_RESTART_DELAY_S)


@dataclass
class Child:
    """One supervised process, and what the supervisor knows of its health."""

    name: str
    argv: list[str]
    process: subprocess.Popen
    probe_url: str | None = None  # only Daphne answers HTTP
    pass_fds: tuple[int, ...] = ()  # the site's listening socket, for Daphne
    started_at: float = field(default_factory=time.monotonic)
    answered: bool = False
    failures: int = 0
    busy_failures: int = 0  # probes missed while the process was burning CPU (serving, not wedged)
    next_probe_at: float = 0.0
    cpu_seen: tuple[float, float] | None = None  # (monotonic time, the process's CPU seconds) at the last probe


def answers(url: str, timeout_s: float) -> bool:
    """True when the server sends any HTTP answer within the timeout (an error status is still an answer)."""
    try:
        with urlopen(Request(url, headers={"Cookie": PROBE_COOKIE}), timeout=timeout_s) as response:
            response.read()
        return True
    except HTTPError:
        return True
    except (OSError, ValueError):
        return False


# Busier than this (CPU seconds per second since the last probe) and a process that misses a probe is
# taken to be serving a load: a stopped or hung one uses none.
BUSY_CPU_SHARE = 0.02


def cpu_seconds(pid: int) -> float | None:
    """A process's user + system CPU time, from /proc (None once it is gone, or off Linux)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def burning_cpu(child: Child) -> bool:
    """Whether the child used more than BUSY_CPU_SHARE of a core since its previous probe (remembering this one)."""
    now, cpu = time.monotonic(), cpu_seconds(child.process.pid)
    before, child.cpu_seen = child.cpu_seen, (now, cpu) if cpu is not None else None
    if before is None or cpu is None or now <= before[0]:
        return False
    return (cpu - before[1]) / (now - before[0]) > BUSY_CPU_SHARE


def kill_group(process: subprocess.Popen) -> None:
    """SIGKILL a child's whole process group (it runs in a session of its own) and reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


class Stop(Exception):
    """Raised by the signal handler to unwind into the orderly shutdown."""


def _raise_stop(signum, frame):
    raise Stop(signal.Signals(signum).name)


def var_dir() -> Path:
    return Path(os.environ.get("COURSESITE_VAR_DIR") or BASE_DIR / "var")


def say(message: str) -> None:
    print(f"[coursesite] {message}", flush=True)


class Stack:
    """The servers and processes one command started, stopped in reverse order."""

    def __init__(self, data_root: Path):
        self.data_root = data_root
        self.postgres: EmbeddedPostgres | None = None
        self.redis: EmbeddedRedis | None = None
        self.children: list[Child] = []
        self.grace_s = SHUTDOWN_GRACE_S
        self.listener: socket.socket | None = None

    def listen(self, host: str, port: int) -> int:
        """Open the site's port once; every Daphne inherits the socket and accepts from its one queue."""
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            listener.bind((host, port))
            listener.listen(LISTEN_BACKLOG)
        except OSError:
            listener.close()
            raise
        listener.set_inheritable(True)
        self.listener = listener
        return listener.fileno()

    def start_servers(self) -> dict[str, str]:
        urls = {}
        if os.environ.get("DATABASE_URL"):
            urls["DATABASE_URL"] = os.environ["DATABASE_URL"]
        else:
            self.postgres = EmbeddedPostgres(self.data_root / "postgres")
            urls["DATABASE_URL"] = self.postgres.start()
            say(f"PostgreSQL (embedded) data in {self.postgres.data_dir}")
        if os.environ.get("REDIS_URL"):
            urls["REDIS_URL"] = os.environ["REDIS_URL"]
        else:
            self.redis = EmbeddedRedis(self.data_root / "redis")
            urls["REDIS_URL"] = self.redis.start()
            say(f"Redis (embedded) on {urls['REDIS_URL']}")
        return urls

    def spawn(self, name: str, argv: list[str], env: dict[str, str], probe_url: str | None = None,
              pass_fds: tuple[int, ...] = ()) -> Child:
        """Start one process of the site in a session of its own and supervise it."""
        child = Child(name=name, argv=argv, process=_popen(argv, env, pass_fds), probe_url=probe_url, pass_fds=pass_fds)
        self.children.append(child)
        return child

    def pids(self) -> dict[str, int]:
        """Each supervised process's pid, by name."""
        return {child.name: child.process.pid for child in self.children}

    def stop(self) -> None:
        """SIGTERM every child, newest first; SIGKILL the process group of any still there after the grace period."""
        for child in reversed(self.children):
            if child.process.poll() is None:
                child.process.terminate()
        deadline = time.monotonic() + self.grace_s
        for child in reversed(self.children):
            try:
                child.process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{child.name} did not stop within {self.grace_s:g}s of SIGTERM; killing it")
                kill_group(child.process)
        self.children.clear()
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        if self.redis:
            self.redis.stop()
        if self.postgres:
            self.postgres.stop()


def _popen(argv: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()) -> subprocess.Popen:
    # A session of its own: Ctrl-C reaches only us, we stop children in order, and a
    # wedged one is killed with everything it started (its process group).
    return subprocess.Popen(argv, env=env, cwd=BASE_DIR, stdin=subprocess.DEVNULL, start_new_session=True,
                            pass_fds=pass_fds)


class Supervisor:
    """Keeps `make run`'s processes and embedded servers up: restarts what died, kills what wedged."""

    def __init__(self, stack: Stack, env: dict[str, str], policy: SupervisorPolicy, processes_file: Path) -> None:
        self.stack = stack
        self.env = env
        self.policy = policy
        self.processes_file = processes_file
        self.down_since: dict[str, float] = {}

    def tick(self) -> None:
        """One round: embedded servers first (everything else needs them), then each process."""
        self.check_embedded("redis", self.stack.redis)
        self.check_embedded("postgres", self.stack.postgres)
        for index, child in enumerate(self.stack.children):
            if child.process.poll() is not None:
                # A crashed or killed process comes back; the rest carry on.
                say(f"{child.name} exited with status {child.process.returncode}; restarting it")
                time.sleep(self.policy.restart_delay_s)
                self.replace(index)
            elif child.probe_url and time.monotonic() >= child.next_probe_at:
                self.probe(index, child)

    def probe(self, index: int, child: Child) -> None:
        """Ask the process for a page; enough unanswered asks in a row and it is killed and replaced."""
        now = time.monotonic()
        child.next_probe_at = now + self.policy.probe_interval_s
        assert child.probe_url is not None
        answered = answers(child.probe_url, self.policy.probe_timeout_s)
        busy = burning_cpu(child)
        if answered:
            child.answered, child.failures, child.busy_failures = True, 0, 0
            return
        if not child.answered and now - child.started_at < self.policy.start_timeout_s:
            return  # still starting up
        # A process that misses its probes while it burns CPU is most likely serving a burst of readers
        # (it turns the excess away with `busy`); it gets longer before it is taken for wedged.
        if busy:
            child.busy_failures += 1
        else:
            child.failures += 1
        if child.failures < self.policy.probe_failures and child.busy_failures < self.policy.busy_probe_failures:
            return
        say(f"{child.name} (pid {child.process.pid}) has not answered {child.probe_url} "
            f"{child.failures + child.busy_failures} times in a row; killing and restarting it")
        kill_group(child.process)
        self.replace(index)

    def replace(self, index: int) -> None:
        """Start a process again exactly as before."""
        old = self.stack.children[index]
        self.stack.children[index] = Child(name=old.name, argv=old.argv, process=_popen(old.argv, self.env, old.pass_fds),
                                           probe_url=old.probe_url, pass_fds=old.pass_fds)
        self.processes_file.write_text(json.dumps(self.stack.pids()))

    def check_embedded(self, name: str, server: EmbeddedRedis | EmbeddedPostgres | None) -> None:
        """Bring back an embedded server that died, on the same port or socket and data, after a short delay."""
        if server is None:
            return
        if server.is_running():
            if name in self.down_since:
                say(f"{name} (embedded) is back")
                del self.down_since[name]
            return
        now = time.monotonic()
        if name not in self.down_since:
            say(f"{name} (embedded) is down; restarting it in {self.policy.embedded_restart_delay_s:g}s")
            self.down_since[name] = now
            return
        if now - self.down_since[name] < self.policy.embedded_restart_delay_s:
            return
        try:
            server.restart()
        except (OSError, RuntimeError, subprocess.SubprocessError) as error:
            say(f"{name} (embedded) did not start again ({error.__class__.__name__}); trying again")
            self.down_since[name] = now
            return
        say(f"{name} (embedded) restarted")
        del self.down_since[name]


def child_env(urls: dict[str, str], settings_module: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(urls)
    env["DJANGO_SETTINGS_MODULE"] = settings_module
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


# What `make run` does before it starts a server: migrate, load the course when missing, end runs a
# killed site left running, collect static files.
SITE_PREPARATION = (
    ("migrate", "--noinput", "-v", "0"), ("load_course",), ("sweep_runs",), ("collectstatic", "--noinput", "-v", "0"),
)
_PREPARE_SCRIPT = ("import json, sys, django; django.setup(); from django.core.management import call_command\n"
                   "for command in json.loads(sys.argv[1]): call_command(*command)")


def prepare_site(env: dict[str, str]) -> None:
    """Run SITE_PREPARATION's commands in one Python process: one Django start-up instead of four."""
    subprocess.run([sys.executable, "-c", _PREPARE_SCRIPT, json.dumps(SITE_PREPARATION)], env=env, cwd=BASE_DIR,
                   check=True)


def declared_job_queues(env: dict[str, str]) -> list[JobQueueSpec]:
    """The job queues the demos declare, read from the registry with the site's settings."""
    os.environ.update(env)
    import django

    django.setup()
    from demos.registry import job_queues

    return job_queues()


def web_processes_wanted() -> int | None:
    """WEB_PROCESSES as a count of Daphnes (unset or empty: one per core); None when it is not a positive number."""
    text = os.environ.get("WEB_PROCESSES", "").strip()
    if not text:
        return default_web_processes()
    try:
        count = int(text)
    except ValueError:
        return None
    return count if count >= 1 else None


def command_run(args: argparse.Namespace) -> int:
    port = int(os.environ.get("PORT", "8000"))
    host = os.environ.get("HOST", "127.0.0.1")
    web_processes = web_processes_wanted()
    if web_processes is None:
        print(f"WEB_PROCESSES={os.environ['WEB_PROCESSES']!r} is not a number of processes; "
              "give a whole number from 1 up, or leave it unset for one per core.", file=sys.stderr)
        return 1
    # Twisted adopts an inherited socket as IPv4 only: an IPv6 HOST binds in Daphne itself, so one process.
    shared_socket = ":" not in host
    if not shared_socket and web_processes > 1:
        print(f"HOST={host} is an IPv6 address: several web processes need an IPv4 HOST; set WEB_PROCESSES=1 "
              "or serve on IPv4 behind your proxy.", file=sys.stderr)
        return 1
    if not port_is_free(port, host):
        print(f"Port {port} on {host} is already in use; stop whatever holds it or set PORT=<another port>.", file=sys.stderr)
        return 1

    upstream_port = int(os.environ.get("UPSTREAM_PORT") or free_port("127.0.0.1"))
    if not port_is_free(upstream_port, "127.0.0.1"):
        print(f"Port {upstream_port} for the upstream is already in use; set UPSTREAM_PORT=<another port>.", file=sys.stderr)
        return 1

    data_root = var_dir()
    services_file = data_root / "run" / "services.json"
    processes_file = data_root / "run" / "processes.json"  # for benchmarks that measure them
    probes_file = data_root / "run" / "web_probes.json"  # each Daphne's private address, by name
    stack = Stack(data_root)
    parent_pid = os.getppid()
    signal.signal(signal.SIGTERM, _raise_stop)
    signal.signal(signal.SIGINT, _raise_stop)
    signal.signal(signal.SIGHUP, _raise_stop)
    try:
        urls = stack.start_servers()
        urls["DEMO_UPSTREAM_ADDRESS"] = f"127.0.0.1:{upstream_port}"
        services_file.parent.mkdir(parents=True, exist_ok=True)
        services_file.write_text(json.dumps(urls))
        env = child_env(urls, "coursesite.settings.dev")
        prepare_site(env)
        job_queues = declared_job_queues(env)
        policy = SupervisorPolicy.from_settings()  # declared_job_queues() has set Django up
        stack.grace_s = policy.stop_grace_s
        try:
            listen_fd = stack.listen(host, port) if shared_socket else None
        except OSError as error:
            say(f"could not listen on {host}:{port} ({error.strerror}); stop whatever holds it or set PORT=<another port>")
            return 1
        probe_ports = [free_port("127.0.0.1") for _ in range(web_processes)] if shared_socket else None
        # Each Daphne is probed where it alone answers: its private port (or, one Daphne on IPv6, the site's).
        probe_host = f"[{host}]" if ":" in host else host
        private_urls = iter([f"http://127.0.0.1:{probe_port}" for probe_port in probe_ports or []]
                            or [f"http://{probe_host}:{port}"])
        probe_urls: dict[str, str] = {}
        for process in site_processes(host=host, port=port, run_dir=data_root / "run", job_queues=job_queues,
                                      upstream_port=upstream_port, listen_fd=listen_fd, probe_ports=probe_ports):
            is_web = process.name.startswith("daphne")
            if is_web:
                probe_urls[process.name] = next(private_urls)
            stack.spawn(process.name, list(process.argv), env,
                        probe_url=probe_urls[process.name] + PROBE_PATH if is_web else None,
                        pass_fds=(listen_fd,) if is_web and listen_fd is not None else ())
        processes_file.write_text(json.dumps(stack.pids()))
        probes_file.write_text(json.dumps(probe_urls))
        say(f"{web_processes} web process{'es' if web_processes > 1 else ''} (Daphne) on port {port}")
        say(f"Site: http://{host}:{port}/   Health: http://{host}:{port}/healthz")
        say("Admin login: in another terminal run `make superuser`, then open /admin/")
        say("Ctrl-C stops everything.")
        supervisor = Supervisor(stack, env, policy, processes_file)
        while True:
            supervisor.tick()
            # make was killed without passing the signal on: stop rather than linger.
            if os.getppid() != parent_pid:
                say("parent process went away; stopping")
                return 0
            time.sleep(TICK_S)
    except Stop as stop:
        say(f"{stop}: stopping")
        return 0
    except subprocess.CalledProcessError as error:
        say(f"setup step failed: {' '.join(map(str, error.cmd[1:]))}")
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        stack.stop()
        services_file.unlink(missing_ok=True)
        processes_file.unlink(missing_ok=True)
        probes_file.unlink(missing_ok=True)
        say("stopped")


# What `--split` runs in its second session, beside the rest: the modules that start whole sites of their
# own and the browser tests (markers in pytest.ini). Both sessions last about as long that way: in one clean
# clone the own-site modules alone took 7 min 46 s beside 12 min 54 s for the rest.
SECOND_SESSION = "own_site or browser"


def command_test(args: argparse.Namespace) -> int:
    var_dir().mkdir(parents=True, exist_ok=True)
    if args.split:
        return _test_in_two_sessions(args.pytest_args)
    test_root = Path(tempfile.mkdtemp(prefix="test-", dir=var_dir()))
    stack = Stack(test_root)
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        urls = stack.start_servers()
        env = child_env(urls, "coursesite.settings.test")
        return subprocess.run([sys.executable, "-m", "pytest", *args.pytest_args], env=env, cwd=BASE_DIR).returncode
    except (Stop, KeyboardInterrupt):
        return 130
    finally:
        stack.stop()
        remove_tree(test_root)


def command_env(args: argparse.Namespace) -> int:
    """Print the URLs of a running `make run`, for shells and scripts."""
    services_file = var_dir() / "run" / "services.json"
    if not services_file.exists():
        print("No site is running under var/ (start one with `make run`).", file=sys.stderr)
        return 1
    for name, url in json.loads(services_file.read_text()).items():
        print(f"export {name}='{url}'")
    return 0


def _test_in_two_sessions(pytest_args: list[str]) -> int:
    """The tests marked own_site or browser in one pytest session, the rest in another, both at once; each
    session against throwaway servers of its own, so they share no database, no Redis and no process.

    The suite mostly waits (on servers starting and stopping, browsers, faults being repaired): in one session
    it kept the two cores about 0.6 busy over 19 minutes. The second session's output is kept in a file and
    printed once both have ended, after the other's, so neither interleaves with the other.
    """
    stacks = [Stack(Path(tempfile.mkdtemp(prefix="test-", dir=var_dir()))) for _ in range(2)]
    second_log_path = var_dir() / f"test-second-session-{os.getpid()}.log"
    sessions: list[subprocess.Popen] = []
    signal.signal(signal.SIGTERM, _raise_stop)
    try:
        selections = [["-m", SECOND_SESSION, "-p", "no:cacheprovider"], ["-m", f"not ({SECOND_SESSION})"]]
        with open(second_log_path, "w") as second_log:
            for stack, selection, output in zip(stacks, selections, [second_log, None], strict=True):
                env = child_env(stack.start_servers(), "coursesite.settings.test")
                sessions.append(subprocess.Popen([sys.executable, "-m", "pytest", *selection, *pytest_args], env=env,
                                                 cwd=BASE_DIR, stdout=output, stderr=subprocess.STDOUT if output else None))
            rest_code = sessions[1].wait()
            second_code = sessions[0].wait()
        print(f"\n===== the second session ({SECOND_SESSION}), run beside the above =====", flush=True)
        sys.stdout.write(second_log_path.read_text(errors="replace"))
        sys.stdout.flush()
        return rest_code or second_code
    except (Stop, KeyboardInterrupt):
        return 130
    finally:
        for session in sessions:
            if session.poll() is None:
                session.terminate()
                try:
                    session.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    session.kill()
        for stack in stacks:
            stack.stop()
        second_log_path.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursesite.stack", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the site and its servers").set_defaults(handler=command_run)
    test = commands.add_parser("test", help="run pytest against throwaway real servers; other arguments go to pytest")
    test.add_argument("--split", action="store_true",
                      help=f"the whole suite as two sessions at once: the tests marked {SECOND_SESSION}, and the rest")
    test.set_defaults(handler=command_test)
    commands.add_parser("env", help="print the URLs of the running site's servers").set_defaults(handler=command_env)
    args, rest = parser.parse_known_args(argv)
    if rest and args.handler is not command_test:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.pytest_args = rest
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
