"""Page throughput with wrk: a lesson page against a bare hello view, Daphne against Uvicorn."""
from __future__ import annotations

import re
import shutil
import subprocess
import sys
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


def start_uvicorn(services: dict[str, str], env_extra: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """The same ASGI app under Uvicorn, against the same servers."""
    import os

    port = free_port()
    env = {**os.environ, **services, **env_extra, "DJANGO_SETTINGS_MODULE": "coursesite.settings.prod"}
    process = subprocess.Popen(
        [str(Path(sys.executable).parent / "uvicorn"), "coursesite.asgi:application", "--host", "127.0.0.1",
         "--port", str(port), "--log-level", "warning", "--no-access-log"],
        cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            urlopen(url + "/hello", timeout=1)
            return process, url
        except OSError:
            time.sleep(0.2)
    process.terminate()
    raise RuntimeError("uvicorn did not start")


def measure(site, *, connections: int, seconds: int, env_extra: dict[str, str]) -> dict:
    hello = wrk(site.url + "/hello", connections=connections, seconds=seconds)
    lesson = wrk(site.url + LESSON_PATH, connections=connections, seconds=seconds)
    uvicorn, uvicorn_url = start_uvicorn(site.services, env_extra)
    try:
        lesson_uvicorn = wrk(uvicorn_url + LESSON_PATH, connections=connections, seconds=seconds)
    finally:
        uvicorn.terminate()
        uvicorn.wait(timeout=10)
    return {
        "hello_daphne": hello,
        "lesson_daphne": lesson,
        "lesson_uvicorn": lesson_uvicorn,
        "lesson_to_hello": lesson["rps"] / hello["rps"],
        "uvicorn_to_daphne": lesson_uvicorn["rps"] / lesson["rps"],
    }
