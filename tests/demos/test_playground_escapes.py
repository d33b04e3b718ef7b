"""The playground's escape suite: hostile programs sent through the real site, each contained, with its reason shown.

Every program goes the way a reader's does: a websocket to the suite's real
Daphne, the run on a real Celery worker (here in this process, so that the
settings below reach it: smaller limits than the defaults, so each hostile
program meets its limit in a second or so), then bubblewrap. Each case checks
what the reader is told: the summary's sentence and `killed_reason`, or the
error the program itself printed. After the suite the site still serves a
page and runs demos, and no sandbox process is left on the machine.
"""
import asyncio
import textwrap
from pathlib import Path
from urllib.parse import urlparse
from urllib.request import urlopen

import pytest
from django.conf import settings

from tests.demos.helpers import demo_socket, receive_until_finished, start_run
from tests.demos.test_playground_sandbox import sandbox_processes

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server", "playground_worker")]

WALL_S = 10.0  # the default: only the case about the wall limit shortens it (SHORT_WALL_S)
SHORT_WALL_S = 2.0
CPU_S = 1
TASKS = 32
OUTPUT_BYTES = 256 * 1024


@pytest.fixture(scope="module")
def playground_worker(celery_worker_thread):
    """The worker in this process, with the playground's limits made small for the module.

    The programs also run at the site's own CPU priority here: at the default
    (nice 10, a small CPU cgroup) a machine busy with other work could starve
    the spinning program of the one CPU second it must use up, and the point
    of these cases is the limits, not the priority (test_playground_sandbox.py
    and the bench prove that).
    """
    overrides = {"CODE_SANDBOX_WALL_S": WALL_S, "CODE_SANDBOX_CPU_S": CPU_S, "CODE_SANDBOX_TASKS": TASKS,
                 "CODE_SANDBOX_OUTPUT_BYTES": OUTPUT_BYTES, "CODE_SANDBOX_NICE": 0, "CODE_SANDBOX_CPU_SHARES": 0}
    saved = {name: getattr(settings, name) for name in overrides}
    for name, value in overrides.items():
        setattr(settings, name, value)
    yield celery_worker_thread
    for name, value in saved.items():
        setattr(settings, name, value)


async def run_playground(code: str, timeout: float = 40) -> tuple[dict, str, str]:
    """Run `code` in the playground through the real socket: (summary, stdout, stderr) as the reader gets them."""
    async with demo_socket() as socket:
        accepted = await start_run(socket, "playground", {"code": textwrap.dedent(code)})
        batches, finished = await receive_until_finished(socket, accepted["run"], timeout=timeout)
    assert finished["status"] == "succeeded", finished
    events = [event for batch in batches for event in batch["events"] if event["kind"] == "output"]
    stdout = "".join(event["text"] for event in events if event["stream"] == "stdout")
    stderr = "".join(event["text"] for event in events if event["stream"] == "stderr")
    return finished["summary"], stdout, stderr


def _targets(site_port: int) -> dict[str, str]:
    redis = urlparse(settings.REDIS_URL)
    database = settings.DATABASES["default"]
    postgres_host = database["OPTIONS"].get("host") or database["HOST"] or "127.0.0.1"
    postgres_port = int(database["PORT"] or 5432)
    if postgres_host.startswith("/"):  # the embedded server listens on a Unix socket only
        postgres = (f"s = socket.socket(socket.AF_UNIX)\n"
                    f"s.connect({str(Path(postgres_host) / f'.s.PGSQL.{postgres_port}')!r})")
    else:
        postgres = f"socket.create_connection(({postgres_host!r}, {postgres_port}), timeout=2)"
    return {
        "site": f"socket.create_connection(('127.0.0.1', {site_port}), timeout=2)",
        "postgres": postgres,
        "redis": f"socket.create_connection(({redis.hostname!r}, {redis.port or 6379}), timeout=2)",
        "outside": "socket.create_connection(('1.1.1.1', 443), timeout=2)",
    }


@pytest.mark.parametrize(("target", "error"), [
    ("site", "ConnectionRefusedError"), ("postgres", None), ("redis", "ConnectionRefusedError"),
    ("outside", "Network is unreachable"),
])
async def test_a_connection_to_the_site_its_databases_or_the_outside_fails(target, error, daphne_server):
    connect = _targets(daphne_server.port)[target]
    summary, stdout, stderr = await run_playground(f"import socket\n{connect}\nprint('connected')\n")
    assert "connected" not in stdout
    # PostgreSQL here is a Unix socket in a directory the sandbox does not have; over TCP it would be refused.
    expected = error or ("FileNotFoundError" if "AF_UNIX" in connect else "ConnectionRefusedError")
    assert expected in stderr.splitlines()[-1], stderr
    assert summary["exit_code"] == 1 and summary["killed_reason"] is None
    assert "failed with exit code 1" in summary["text"]


async def test_the_sites_secret_key_var_and_settings_are_not_there_to_read():
    base = Path(settings.BASE_DIR)
    code = f"""
    import os
    for path in ({str(base / "var" / "secret_key")!r}, {str(base / "coursesite" / "settings" / "base.py")!r},
                 {str(base / "var")!r}, {str(base / ".venv")!r}):
        print(path, os.path.exists(path))
    os.listdir({str(base / "var")!r})
    """
    summary, stdout, stderr = await run_playground(code)
    assert stdout.count(" False\n") == 4 and " True" not in stdout
    assert stderr.splitlines()[-1].startswith("FileNotFoundError")
    assert settings.SECRET_KEY not in stdout + stderr


async def test_no_environment_of_the_site_is_readable_neither_its_own_nor_pid_1s_nor_its_parents():
    code = """
    import os
    print(sorted(os.environ))
    found = []
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                found.append((pid, open(f"/proc/{pid}/environ", "rb").read()))
            except OSError as error:
                print(pid, type(error).__name__)
    print("readable", [pid for pid, _ in found])
    print(b"SECRET_KEY" in b"".join(text for _, text in found), b"DATABASE_URL" in b"".join(text for _, text in found))
    open(f"/proc/{os.getppid()}/environ", "rb").read()
    """
    summary, stdout, stderr = await run_playground(code)
    lines = stdout.splitlines()
    assert lines[0] == "['HOME', 'LANG', 'MALLOC_ARENA_MAX', 'PATH', 'PWD']"
    assert "1 PermissionError" in lines  # bubblewrap's init, the program's parent: another user's
    assert lines[-1] == "False False"
    assert stderr.splitlines()[-1].startswith("PermissionError: [Errno 13]")


async def test_writing_anywhere_but_tmp_fails_and_tmp_is_capped():
    code = """
    import os
    for path in ("/sandbox/main.py", "/usr/lib/evil", "/evil", "/proc/sys/kernel/hostname", "/dev/evil"):
        try:
            open(path, "w").write("x")
            print("wrote", path)
        except OSError as error:
            print(path, error.strerror)
    with open("/tmp/big", "wb") as big:
        big.write(b"x" * (64 * 2**20))
    """
    summary, stdout, stderr = await run_playground(code)
    assert "wrote" not in stdout and stdout.count("Read-only file system") + stdout.count("Permission denied") == 5
    assert summary["killed_reason"] == "files" and "MiB in /tmp" in summary["text"]
    assert "No space left on device" in stderr or "File too large" in stderr


HOSTILE = {
    "fork-bomb": ("import os\nwhile True:\n    os.fork()\n", "processes", f"limit of {TASKS} processes and threads"),
    "thread-bomb": ("import threading, time\nwhile True:\n    threading.Thread(target=time.sleep, args=(60,)).start()\n",
                    "processes", f"limit of {TASKS} processes and threads"),
    "ten-gib": ("block = bytearray(10 * 2**30)\n", "memory", "memory limit"),
    "spin": ("while True:\n    pass\n", "cpu", f"{CPU_S} s of CPU time"),
    "print-a-gigabyte": ("import sys\nchunk = 'x' * 2**20\nfor _ in range(1024):\n    sys.stdout.write(chunk)\n",
                         "output", f"output limit of {OUTPUT_BYTES // 1024} KiB"),
    "sleep-past-the-wall": ("import time\ntime.sleep(60)\n", "time", f"wall-clock limit of {SHORT_WALL_S:g} s"),
}


@pytest.mark.parametrize("name", list(HOSTILE))
async def test_a_program_past_a_limit_is_stopped_and_the_limit_named(name, monkeypatch):
    code, reason, words = HOSTILE[name]
    if reason == "time":
        monkeypatch.setattr(settings, "CODE_SANDBOX_WALL_S", SHORT_WALL_S)
    summary, stdout, stderr = await run_playground(code)
    assert summary["killed_reason"] == reason, summary
    assert words in summary["text"], summary["text"]
    assert summary["timed_out"] is (reason == "time")
    if reason == "processes":
        assert summary["peak_tasks"] <= TASKS  # the cap held, though the worker runs as root
    if reason == "output":
        assert OUTPUT_BYTES <= len(stdout.encode()) <= OUTPUT_BYTES + 4096
    wall_limit_s = SHORT_WALL_S if reason == "time" else WALL_S
    assert summary["wall_ms"] < (wall_limit_s + 3) * 1000
    assert sandbox_processes() == []


@pytest.mark.parametrize(("code", "seen_in_stderr", "exit_code"), [
    ("import os\nos.kill(os.getppid(), 9)\n", "PermissionError: [Errno 1] Operation not permitted", 1),
    ("import os\nos.killpg(0, 9)\n", "", -9),
    ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
     "if libc.unshare(0x10000000) != 0:\n    raise OSError(ctypes.get_errno(), 'unshare(CLONE_NEWUSER) refused')\n",
     "PermissionError: [Errno 1] unshare(CLONE_NEWUSER) refused", 1),
    ("import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
     "if libc.mount(b'none', b'/usr', b'tmpfs', 0, None) != 0:\n    raise OSError(ctypes.get_errno(), 'mount refused')\n",
     "PermissionError: [Errno 1] mount refused", 1),
    ("import ctypes\nctypes.string_at(0)\n", "", -11),
    ("import coursesite.settings\n", "ModuleNotFoundError: No module named 'coursesite'", 1),
], ids=["kill-the-parent", "killpg-0", "ctypes-unshare", "ctypes-mount", "ctypes-segfault", "import-the-site"])
async def test_signals_ctypes_and_the_sites_modules_reach_nothing_outside(code, seen_in_stderr, exit_code):
    summary, _, stderr = await run_playground(code)
    assert summary["exit_code"] == exit_code and summary["killed_reason"] is None
    assert seen_in_stderr in stderr
    if exit_code < 0:
        signal_name = {-9: "SIGKILL", -11: "SIGSEGV"}[exit_code]
        assert f"killed by signal {-exit_code} ({signal_name})" in summary["text"]


async def test_without_bubblewrap_the_playground_says_it_is_off_and_other_demos_still_run():
    saved = settings.CODE_SANDBOX_BWRAP
    settings.CODE_SANDBOX_BWRAP = "/nonexistent/bwrap"
    try:
        summary, stdout, stderr = await run_playground("print('hello')\n")
    finally:
        settings.CODE_SANDBOX_BWRAP = saved
    assert summary["text"].startswith("The playground is off on this server: bubblewrap is not installed here")
    assert summary["available"] is False and stdout == stderr == ""
    async with demo_socket() as socket:
        accepted = await start_run(socket, "one-cook", {"requests": 2, "wait_ms": 50})
        _, finished = await receive_until_finished(socket, accepted["run"])
    assert finished["status"] == "succeeded"


async def test_after_the_suite_the_site_serves_pages_and_runs_and_no_sandbox_process_is_left(daphne_server):
    summary, stdout, _ = await run_playground("import threading\nthreading.Thread(target=print, args=('ok',)).start()\n")
    assert stdout == "ok\n" and summary["exit_code"] == 0
    async with demo_socket() as socket:
        accepted = await start_run(socket, "thread-pool", {"requests": 4, "threads": 2, "wait_ms": 50})
        _, finished = await receive_until_finished(socket, accepted["run"])
    assert finished["status"] == "succeeded"
    page = await asyncio.to_thread(lambda: urlopen(daphne_server.url + "/", timeout=10))
    assert page.status == 200
    assert sandbox_processes() == []
