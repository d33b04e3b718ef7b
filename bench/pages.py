"""Page throughput with wrk: a lesson page against a bare hello view, on Daphne, Uvicorn and Granian."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
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


def start_server(name: str, services: dict[str, str], env_extra: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """Start one of OTHER_SERVERS on a free port with the site's environment; return it and its URL."""
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
    url = f"http://127.0.0.1:{port}"
    for _ in range(150):
        if process.poll() is not None:
            output.seek(0)
            said = output.read()[-500:]
            raise RuntimeError(f"{name} exited with {process.returncode}: {said}")
        try:
            urlopen(url + "/hello", timeout=1)
            return process, url
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"{name} did not start")


def _pair(base_url: str, *, connections: int, seconds: int) -> dict:
    """The hello view, then the lesson page (fetched once first, so it is cached), on one server."""
    urlopen(base_url + LESSON_PATH, timeout=30).read()
    hello = wrk(base_url + "/hello", connections=connections, seconds=seconds)
    lesson = wrk(base_url + LESSON_PATH, connections=connections, seconds=seconds)
    return {"hello": hello, "lesson": lesson, "rps_ratio": lesson["rps"] / hello["rps"],
            "p99_ratio": lesson["p99_ms"] / hello["p99_ms"] if lesson["p99_ms"] and hello["p99_ms"] else None}


def measure(site, *, connections: int, seconds: int, env_extra: dict[str, str]) -> dict:
    """Hello view and lesson page under wrk on Daphne (the site), Uvicorn and Granian, one after another."""
    servers = {"daphne": _pair(site.url, connections=connections, seconds=seconds)}
    for name in OTHER_SERVERS:
        try:
            process, url = start_server(name, site.services, env_extra)
        except RuntimeError as error:
            servers[name] = {"error": str(error)}
            continue
        try:
            servers[name] = _pair(url, connections=connections, seconds=seconds)
        finally:
            process.terminate()
            process.wait(timeout=10)
    daphne = servers["daphne"]
    return {
        "servers": servers,
        # The keys the rest of the bench (and older renderings) read.
        "hello_daphne": daphne["hello"], "lesson_daphne": daphne["lesson"],
        "lesson_to_hello": daphne["rps_ratio"], "lesson_p99_to_hello": daphne["p99_ratio"],
    }
