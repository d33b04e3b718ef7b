"""Start the site the way `make run` does, for benchmarks to load."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.request import urlopen

from coursesite.embedded import free_port

BASE_DIR = Path(__file__).resolve().parent.parent


@dataclass
class RunningSite:
    url: str
    process: subprocess.Popen
    var_dir: Path
    log_path: Path | None = None  # the supervisor's output (and its children's), when it was kept

    @property
    def services(self) -> dict[str, str]:
        return json.loads((self.var_dir / "run" / "services.json").read_text())

    @property
    def pids(self) -> dict[str, int]:
        return json.loads((self.var_dir / "run" / "processes.json").read_text())

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(timeout=30)


# Every reader of a site started here is this machine, 127.0.0.1: the per-address fair shares
# that keep one stranger from taking every slot would turn the test's or benchmark's own load away.
ONE_LOCAL_CLIENT_ENV = {
    "DEMO_WORKER_RUNS_PER_ADDRESS": "1000", "DEMO_LOOP_RUNS_PER_ADDRESS": "100000",
    "DEMO_STEP_SOCKETS_PER_ADDRESS": "1000", "DEMO_STEP_SESSIONS_PER_ADDRESS": "1000",
    # The loop-lag admission check would turn a test's sockets away whenever the shared machine is busy;
    # the bench's load sections turn it back on (bench/__main__.py SITE_ENV).
    "DEMO_ADMIT_MAX_LAG_MS": "0",
}


def start_site(var_dir: Path, *, extra_env: dict[str, str] | None = None, timeout_s: float = 180) -> RunningSite:
    """`python -m coursesite.stack run` in its own var dir, waited for until both its workers answer."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL", "DJANGO_SETTINGS_MODULE"}}
    # One Daphne unless asked: the fault tests and the bench's sections 1-8 kill or measure "the" web process.
    env.update({"COURSESITE_VAR_DIR": str(var_dir), "PORT": str(port), "WEB_PROCESSES": "1", **ONE_LOCAL_CLIENT_ENV})
    env.update(extra_env or {})
    log_name = var_dir.parent / f"{var_dir.name}.log" if var_dir.parent.exists() else None
    log = open(log_name, "w") if log_name else subprocess.DEVNULL
    process = subprocess.Popen([sys.executable, "-m", "coursesite.stack", "run"], cwd=BASE_DIR, env=env,
                               stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the site exited with {process.returncode}; see {getattr(log, 'name', 'its output')}")
        try:
            # Both workers `make run` starts: demo runs, and the offload demo's jobs.
            if json.loads(urlopen(url + "/healthz", timeout=2).read())["celery_workers"] >= 2:
                return RunningSite(url=url, process=process, var_dir=var_dir, log_path=log_name)
        except OSError:
            pass
        time.sleep(0.5)
    process.send_signal(signal.SIGTERM)
    raise RuntimeError("the site did not come up in time")
