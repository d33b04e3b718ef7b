"""Start the whole site, or the test suite, with one command.

    python -m coursesite.stack run            # what `make run` does
    python -m coursesite.stack test [ARGS]    # what `make test` does: pytest ARGS

`run` starts PostgreSQL and Redis (embedded, data under var/, unless
DATABASE_URL / REDIS_URL are set), migrates, loads the course when missing,
then supervises Daphne and a Celery worker. One Ctrl-C or SIGTERM stops every
process it started, in order, and exits. `test` starts throwaway embedded
servers the same way, runs pytest against them and removes them.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from coursesite.embedded import EmbeddedPostgres, EmbeddedRedis, free_port, port_is_free, remove_tree
from coursesite.processes import JobQueueSpec, site_processes

BASE_DIR = Path(__file__).resolve().parent.parent
SHUTDOWN_GRACE_S = 6
RESTART_DELAY_S = 1.0


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
        self.children: list[tuple[str, subprocess.Popen]] = []

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

    def spawn(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen:
        # A session of its own: Ctrl-C reaches only us, and we stop children in order.
        process = subprocess.Popen(argv, env=env, cwd=BASE_DIR, stdin=subprocess.DEVNULL, start_new_session=True)
        self.children.append((name, process))
        return process

    def stop(self) -> None:
        for _name, process in reversed(self.children):
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + SHUTDOWN_GRACE_S
        for name, process in reversed(self.children):
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                say(f"{name} did not stop in {SHUTDOWN_GRACE_S}s; killing it")
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.children.clear()
        if self.redis:
            self.redis.stop()
        if self.postgres:
            self.postgres.stop()


def child_env(urls: dict[str, str], settings_module: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(urls)
    env["DJANGO_SETTINGS_MODULE"] = settings_module
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def manage(args: list[str], env: dict[str, str]) -> None:
    subprocess.run([sys.executable, str(BASE_DIR / "manage.py"), *args], env=env, cwd=BASE_DIR, check=True)


def declared_job_queues(env: dict[str, str]) -> list[JobQueueSpec]:
    """The job queues the demos declare, read from the registry with the site's settings."""
    os.environ.update(env)
    import django

    django.setup()
    from demos.registry import job_queues

    return job_queues()


def command_run(args: argparse.Namespace) -> int:
    port = int(os.environ.get("PORT", "8000"))
    host = os.environ.get("HOST", "127.0.0.1")
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
        manage(["migrate", "--noinput", "-v", "0"], env)
        manage(["load_course"], env)
        manage(["sweep_runs"], env)
        manage(["collectstatic", "--noinput", "-v", "0"], env)
        for process in site_processes(host=host, port=port, run_dir=data_root / "run", job_queues=declared_job_queues(env),
                                      upstream_port=upstream_port):
            stack.spawn(process.name, list(process.argv), env)
        processes_file.write_text(json.dumps({name: process.pid for name, process in stack.children}))
        say(f"Site: http://{host}:{port}/   Health: http://{host}:{port}/healthz")
        say("Admin login: in another terminal run `make superuser`, then open /admin/")
        say("Ctrl-C stops everything.")
        while True:
            for index, (name, child) in enumerate(stack.children):
                if child.poll() is not None:
                    # A crashed or killed server process comes back; the rest carry on.
                    say(f"{name} exited with status {child.returncode}; restarting it")
                    time.sleep(RESTART_DELAY_S)
                    stack.children[index] = (name, subprocess.Popen(
                        child.args, env=env, cwd=BASE_DIR, stdin=subprocess.DEVNULL, start_new_session=True
                    ))
                    processes_file.write_text(json.dumps({n: p.pid for n, p in stack.children}))
            # make was killed without passing the signal on: stop rather than linger.
            if os.getppid() != parent_pid:
                say("parent process went away; stopping")
                return 0
            time.sleep(0.5)
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
        say("stopped")


def command_test(args: argparse.Namespace) -> int:
    var_dir().mkdir(parents=True, exist_ok=True)
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m coursesite.stack", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("run", help="start the site and its servers").set_defaults(handler=command_run)
    test = commands.add_parser("test", help="run pytest against throwaway real servers; other arguments go to pytest")
    test.set_defaults(handler=command_test)
    commands.add_parser("env", help="print the URLs of the running site's servers").set_defaults(handler=command_env)
    args, rest = parser.parse_known_args(argv)
    if rest and args.handler is not command_test:
        parser.error(f"unrecognized arguments: {' '.join(rest)}")
    args.pytest_args = rest
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
