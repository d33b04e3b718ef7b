"""Page throughput with wrk: a lesson page against a bare hello view, on Daphne, Uvicorn and Granian."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO
from urllib.request import urlopen

from bench.site import BASE_DIR, free_port

LESSON_PATH = "/concurrency-and-async/one-cook-many-dishes/"


def wrk(url: str, *, connections: int, seconds: int, threads: int = 2) -> dict:
    """Run wrk and return req/s and p50/p99 latency in ms."""
    if not shutil.which("wrk"):
        raise RuntimeError("wrk is not installed (make bench installs Debian's wrk as root)")
    output = subprocess.run(
        ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout
    throughput = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if throughput is None:
        raise RuntimeError(f"wrk printed no Requests/sec line:\n{output}")
    rps = float(throughput.group(1))
    latencies = {pct: _ms(value) for pct, value in re.findall(r"^\s+(50|99)%\s+(\S+)", output, flags=re.M)}
    errors = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    return {"rps": rps, "p50_ms": latencies.get("50"), "p99_ms": latencies.get("99"),
            "non_2xx": int(errors.group(1)) if errors else 0,
            "command": f"wrk -t{threads} -c{connections} -d{seconds}s --latency {url}"}


def _ms(text: str) -> float:
    parsed = re.match(r"([\d.]+)(\w+)", text)
    if parsed is None:
        raise ValueError(f"not a wrk latency: {text!r}")
    number, unit = parsed.groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}[unit]


# The other ASGI servers, each serving the same app (coursesite.asgi) against the site's own
# PostgreSQL and Redis, one process and one event loop each, as Daphne does under `make run`.
# Neither uvloop nor httptools is installed, so both run the standard asyncio loop, like Daphne.
OTHER_SERVERS = {
    "uvicorn": ("uvicorn", "coursesite.asgi:application", "--host", "127.0.0.1", "--port", "{port}",
                "--log-level", "warning", "--no-access-log"),
    # `asginl`: ASGI without lifespan, which Django does not implement (with `asgi` Granian logs an error and
    # carries on); one worker with one runtime thread and the asyncio loop, Granian's defaults here made explicit.
    "granian": ("granian", "--interface", "asginl", "--host", "127.0.0.1", "--port", "{port}", "--workers", "1",
                "--runtime-threads", "1", "--loop", "asyncio", "--log-level", "warning", "--no-access-log",
                "coursesite.asgi:application"),
}


def start_server(name: str, services: dict[str, str], env_extra: dict[str, str]) -> tuple[subprocess.Popen, str, IO[str]]:
    """Start one of OTHER_SERVERS on a free port with the site's environment; return it, its URL and its output."""
    import os

    port = free_port()
    env = {**os.environ, **services, **env_extra, "DJANGO_SETTINGS_MODULE": "coursesite.settings.prod"}
    program, *args = OTHER_SERVERS[name]
    # Its output goes to a file, not a pipe nobody reads while it serves (a full pipe would stall it).
    output = tempfile.TemporaryFile("w+")
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / program), *(arg.format(port=port) for arg in args)],
        cwd=BASE_DIR, env=env, stdout=output, stderr=subprocess.STDOUT,
    )
    return process, f"http://127.0.0.1:{port}", output


def wait_until_serving(name: str, process: subprocess.Popen, url: str, output: IO[str], timeout_s: float = 30) -> None:
    """Return once `url` answers /hello; raise RuntimeError with the server's last words if it exits or never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output.seek(0)
            raise RuntimeError(f"{name} exited with {process.returncode}: {output.read()[-500:]}")
        try:
            urlopen(url + "/hello", timeout=1)
            return
        except OSError:
            time.sleep(0.2)
    raise RuntimeError(f"{name} did not answer within {timeout_s:.0f} s")


def _pair(base_url: str, *, connections: int, seconds: int) -> dict:
    """The hello view, then the lesson page (fetched once first, so it is cached), on one server."""
    urlopen(base_url + LESSON_PATH, timeout=30).read()
    hello = wrk(base_url + "/hello", connections=connections, seconds=seconds)
    lesson = wrk(base_url + LESSON_PATH, connections=connections, seconds=seconds)
    return {"hello": hello, "lesson": lesson, "rps_ratio": lesson["rps"] / hello["rps"],
            "p99_ratio": lesson["p99_ms"] / hello["p99_ms"] if lesson["p99_ms"] and hello["p99_ms"] else None}


def measure(site, *, connections: int, seconds: int, env_extra: dict[str, str]) -> dict:
    """Hello view and lesson page under wrk on Daphne (the site), then Uvicorn, then Granian.

    Each other server is started, waited for until it answers (so its start-up is not measured),
    measured and stopped before the next starts: started together they took longer on two cores.
    """
    servers: dict[str, dict] = {"daphne": _pair(site.url, connections=connections, seconds=seconds)}
    for name in OTHER_SERVERS:
        process, url, output = start_server(name, site.services, env_extra)
        try:
            wait_until_serving(name, process, url, output)
            servers[name] = _pair(url, connections=connections, seconds=seconds)
        except RuntimeError as error:
            servers[name] = {"error": str(error)}
        finally:
            if process.poll() is None:
                process.terminate()
                process.wait(timeout=10)
            output.close()
    daphne = servers["daphne"]
    return {
        "servers": servers,
        # The keys the rest of the bench (and older renderings) read.
        "hello_daphne": daphne["hello"], "lesson_daphne": daphne["lesson"],
        "lesson_to_hello": daphne["rps_ratio"], "lesson_p99_to_hello": daphne["p99_ratio"],
    }
