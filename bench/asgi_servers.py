"""Websocket readers on Daphne, Uvicorn and Granian side by side: the same app, servers and load.

Each server runs `coursesite.asgi:application` as one process against the
site's own PostgreSQL, Redis and upstream (the services `make run` started),
and takes the same load of arriving readers (bench/viewers.py). The
per-process admission gate (coursesite/server_limits.py) is Daphne's only:
it lives in Daphne's protocol classes, so under the other two a reader is
admitted or refused by the site-wide caps alone. CPU is the server's own
(the process and its children: Granian serves from a worker process).
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.request import urlopen

import psutil

from bench import demos, viewers
from bench.site import BASE_DIR, ONE_LOCAL_CLIENT_ENV, free_port

BIN = Path(sys.executable).parent


def _argv(server: str, port: int) -> list[str]:
    if server == "uvicorn":
        return [str(BIN / "uvicorn"), "coursesite.asgi:application", "--host", "127.0.0.1", "--port", str(port),
                "--log-level", "warning", "--no-access-log", "--ws-per-message-deflate", "false", "--backlog", "4096"]
    if server == "granian":
        return [str(BIN / "granian"), "--interface", "asgi", "--host", "127.0.0.1", "--port", str(port),
                "--workers", "1", "--log-level", "warning", "--no-access-log", "--backlog", "4096",
                "coursesite.asgi:application"]
    raise ValueError(server)


def start(server: str, services: dict[str, str], env_extra: dict[str, str]) -> tuple[subprocess.Popen, str]:
    """One process of `server` serving the app on a free port, once it answers /hello."""
    port = free_port()
    # The same limits as the site's own Daphne (bench.site.start_site): every reader here is 127.0.0.1.
    env = {**os.environ, **services, **ONE_LOCAL_CLIENT_ENV, **env_extra, "DJANGO_SETTINGS_MODULE": "coursesite.settings.prod"}
    process = subprocess.Popen(_argv(server, port), cwd=BASE_DIR, env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"{server} exited with {process.returncode}")
        try:
            urlopen(url + "/hello", timeout=1)
            return process, url
        except OSError:
            time.sleep(0.3)
    process.terminate()
    raise RuntimeError(f"{server} did not start")


def _cpu_s(pid: int) -> float:
    process = psutil.Process(pid)
    total = sum(process.cpu_times()[:2])
    for child in process.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.NoSuchProcess:
            pass
    return total


def _load(site, pid: int, url: str, readers: int, params: dict) -> dict:
    demos.wait_until_settled(site)
    before = _cpu_s(pid)
    row = viewers.measure(site, viewers=readers, params=params, url=url)
    row.pop("sampled_during_load", None)
    time.sleep(0.5)
    row["server_cpu_s"] = round(_cpu_s(pid) - before, 2)
    return row


def measure(site, *, readers: int, params: dict, env_extra: dict[str, str]) -> dict:
    """{server: the viewers' result} for daphne (the site's own), uvicorn and granian."""
    results: dict = {"daphne": _load(site, site.pids["daphne"], site.url, readers, params)}
    for server in ("uvicorn", "granian"):
        try:
            process, url = start(server, site.services, env_extra)
        except RuntimeError as error:
            results[server] = {"error": str(error)}
            continue
        try:
            results[server] = _load(site, process.pid, url, readers, params)
        finally:
            process.terminate()
            try:
                process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    return results


def render(results: dict | None, readers: int) -> list[str]:
    lines = ["", "## 2b. Websocket readers: Daphne, Uvicorn, Granian", ""]
    if results is None:
        return lines + ["Skipped in the smoke run (three servers started for a handful of readers would say nothing)."]
    lines += [f"{readers:,} arriving readers (as in section 2) on each server, one process each, the same app and "
              "services, one after another.", "",
              "| server | finished | refused (busy) | failed | gaps | delay p50 / p99 ms: observer (all) "
              "| handshake p50 / p99 ms | server CPU s | client CPU s |", "|---|---|---|---|---|---|---|---|---|"]
    for server in ("daphne", "uvicorn", "granian"):
        row = results.get(server) or {}
        if "error" in row:
            lines.append(f"| {server} | could not start: {row['error']} | | | | | | | |")
            continue
        lines.append(f"| {server} | {row['finished']} | {row['refused']} | {row['failed']} | {row['gaps']} "
                     f"| {viewers.describe_delays(row)} | {row['handshake_p50_ms']} / "
                     f"{row['handshake_p99_ms']} | {row['server_cpu_s']} | {row['client_cpu_s']} |")
        if row.get("failures"):
            lines.append(f"|  | first failures: {row['failures']} | | | | | | | |")
    return lines
