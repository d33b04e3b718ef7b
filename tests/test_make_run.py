"""`make run`'s supervisor: comes up on embedded servers, stops everything, keeps the data."""
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import pytest
from django.conf import settings

from coursesite.embedded import free_port

pytestmark = [pytest.mark.slow, pytest.mark.own_site]


def _start(var_dir: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    env.update(COURSESITE_VAR_DIR=str(var_dir), PORT=str(port))
    return subprocess.Popen(
        [sys.executable, "-m", "coursesite.stack", "run"], cwd=settings.BASE_DIR, env=env,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
    )


def _wait_healthy(process: subprocess.Popen, port: int, timeout_s: float = 120) -> dict:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        assert process.poll() is None, process.stdout.read()
        try:
            body = json.loads(urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2).read())
            if body["celery_workers"] >= 1:
                return body
        except OSError:
            pass
        time.sleep(0.5)
    raise AssertionError("the site did not come up healthy")


def _processes_mentioning(text: str) -> list[str]:
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            except OSError:
                continue
            if text in cmdline:
                found.append(f"{proc.name}: {cmdline}")
    return found


def _stop_and_measure(process: subprocess.Popen) -> tuple[float, str]:
    started = time.monotonic()
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    return time.monotonic() - started, output


def test_run_stops_everything_on_sigterm_and_keeps_data(tmp_path):
    var_dir = tmp_path / "var"
    port = free_port()
    process = _start(var_dir, port)
    health = _wait_healthy(process, port)
    assert health == {"database": "ok", "redis": "ok", "celery_workers": health["celery_workers"], "down": []}
    home = urlopen(f"http://127.0.0.1:{port}/", timeout=5).read().decode()
    assert "Concurrency" in home
    elapsed, output = _stop_and_measure(process)
    assert process.returncode == 0, output
    assert elapsed < 10, output
    assert "created" in output
    time.sleep(0.5)
    assert _processes_mentioning(str(var_dir)) == []
    assert not port_in_use(port)

    # A second run reuses the data: the course is already there.
    process = _start(var_dir, port)
    _wait_healthy(process, port)
    elapsed, output = _stop_and_measure(process)
    assert "0 created" in output and "kept as they were" in output, output
    assert elapsed < 10
    assert _processes_mentioning(str(var_dir)) == []


def port_in_use(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


def test_port_already_taken_is_one_line_not_a_traceback(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        process = _start(tmp_path / "var", port)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 1
    lines = [line for line in output.splitlines() if line.strip() and "RuntimeDirWarning" not in line and "user_runtime_dir" not in line]
    assert lines == [f"Port {port} on 127.0.0.1 is already in use; stop whatever holds it or set PORT=<another port>."]
