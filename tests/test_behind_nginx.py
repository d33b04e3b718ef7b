"""Behind Debian's nginx, configured from deploy/nginx/coursesite.conf, in front of two Daphnes and a worker.

One site, started as `make run` starts it (WEB_PROCESSES=2, TRUSTED_PROXIES=127.0.0.1),
serves this module and tests/test_several_web_processes.py (conftest's
`two_process_site`), and one nginx runs as a non-daemon child with its
prefix, pid, logs and temp files under the site's var/nginx/. Readers connect
to nginx from addresses of their own on the loopback (127.0.0.2, 127.0.0.3, ...),
so nginx sees each as a different client.
"""
from __future__ import annotations

import asyncio
import gzip
import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path
from urllib.request import Request, urlopen

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from coursesite.embedded import free_port
from tests.servers import TWO_PROCESS_SOCKETS_PER_ADDRESS, wait_two_processes_whole
from tests.test_several_web_processes import LOOP_RUN, WORKER_RUN, stream_run

pytestmark = [pytest.mark.slow, pytest.mark.own_site]

BASE_DIR = Path(__file__).resolve().parent.parent
NGINX = os.environ.get("NGINX", "/usr/sbin/nginx")
TEMPLATE = BASE_DIR / "deploy" / "nginx" / "coursesite.conf"
SOCKETS_PER_ADDRESS = TWO_PROCESS_SOCKETS_PER_ADDRESS  # 4
LESSON_PATH = "/concurrency-and-async/the-event-loop/"
# Long enough to be streaming when its Daphne is stopped.
LONG_LOOP_RUN = ("one-cook", {"requests": 5, "wait_ms": 2000, "jitter_ms": 0})


def render_site_config(*, listen: str, server_name: str, web: str, static_root: Path) -> str:
    """deploy/'s nginx file with its placeholders filled in, as its header tells an operator to."""
    text = TEMPLATE.read_text()
    for name, value in {"LISTEN": listen, "SERVER_NAME": server_name, "WEB": web, "STATIC_ROOT": str(static_root)}.items():
        text = text.replace("{{" + name + "}}", value)
    assert not re.search(r"\{\{[A-Z_]+\}\}", text), "a placeholder the test does not know about"
    return text


def main_config(prefix: Path, site_config: Path) -> str:
    """A whole nginx.conf around the site's file, keeping everything under `prefix`."""
    temp = "\n".join(f"    {kind}_temp_path {prefix / kind};" for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return f"""daemon off;
worker_processes 1;
pid {prefix / 'nginx.pid'};
error_log {prefix / 'error.log'} info;
events {{ worker_connections 512; }}
http {{
    include /etc/nginx/mime.types;
    default_type application/octet-stream;
    access_log {prefix / 'access.log'};
{temp}
    include {site_config};
}}
"""


@pytest.fixture(autouse=True)
def site(two_process_site):
    """The two-Daphne site this module shares with tests/test_several_web_processes.py (conftest's
    `two_process_site`: WEB_PROCESSES=2, TRUSTED_PROXIES=127.0.0.1), whole again before each test."""
    wait_two_processes_whole(two_process_site)
    return two_process_site


@pytest.fixture(scope="module")
def nginx(two_process_site):
    """nginx on a free port in front of the site's one web port; its URL."""
    site = two_process_site
    prefix = site.var_dir / "nginx"
    prefix.mkdir()
    port = free_port()
    site_config = prefix / "coursesite.conf"
    site_config.write_text(render_site_config(listen=f"127.0.0.1:{port}", server_name="127.0.0.1",
                                              web=site.url.removeprefix("http://"),
                                              static_root=site.var_dir / "staticfiles"))
    (prefix / "nginx.conf").write_text(main_config(prefix, site_config))
    process = subprocess.Popen([NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"), "-e", str(prefix / "error.log")],
                               stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
                               start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        assert process.poll() is None, (prefix / "error.log").read_text()
        try:
            urlopen(url + "/hello", timeout=2).read()
            break
        except OSError:
            assert time.monotonic() < deadline, "nginx did not start"
            time.sleep(0.2)
    yield url
    process.send_signal(signal.SIGQUIT)  # graceful stop
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def fetch_gzipped(url: str) -> tuple[int, str, bytes]:
    with urlopen(Request(url, headers={"Accept-Encoding": "gzip"}), timeout=10) as response:
        return response.status, response.headers.get("Content-Encoding", ""), response.read()


def a_static_file(site) -> str:
    """The URL path of one stylesheet collectstatic wrote."""
    static_root = site.var_dir / "staticfiles"
    css = min(path for path in static_root.rglob("*.css") if path.stat().st_size > 1024)
    return "/static/" + css.relative_to(static_root).as_posix()


def test_pages_through_nginx_are_compressed_and_static_files_need_no_daphne(site, nginx):
    status, encoding, body = fetch_gzipped(nginx + LESSON_PATH)
    assert (status, encoding) == (200, "gzip")
    assert "The event loop" in gzip.decompress(body).decode()
    static_path = a_static_file(site)
    daphnes = [site.pids["daphne"], site.pids["daphne 2"]]
    for pid in daphnes:  # nobody behind nginx can answer for a moment
        os.kill(pid, signal.SIGSTOP)
    try:
        status, encoding, body = fetch_gzipped(nginx + static_path)
    finally:
        for pid in daphnes:
            os.kill(pid, signal.SIGCONT)
    assert (status, encoding) == (200, "gzip")
    assert gzip.decompress(body) == (site.var_dir / "staticfiles" / static_path.removeprefix("/static/")).read_bytes()


async def test_a_loop_run_and_a_worker_run_stream_through_nginx(nginx):
    for demo, params in (LOOP_RUN, WORKER_RUN):
        events, finished = await stream_run(nginx, demo, params, local_addr=("127.0.0.2", 0))
        assert finished["status"] == "succeeded" and events > 0, (demo, finished)


async def open_reader(nginx: str, address: str, headers: dict[str, str] | None = None):
    return await connect(nginx.replace("http://", "ws://") + "/ws/demos/", origin=nginx, local_addr=(address, 0),
                         additional_headers=headers or {}, open_timeout=15)


async def test_the_socket_cap_counts_each_real_client_not_nginx(nginx):
    """Four places per address: 127.0.0.5 fills its own (a forged header gets it no more); 127.0.0.6 still gets in."""
    # Addresses no other test uses: a place another test's socket held is freed a moment after it closes.
    opened = []
    try:
        opened += [await open_reader(nginx, "127.0.0.5") for _ in range(SOCKETS_PER_ADDRESS)]
        for forged in (None, {"X-Forwarded-For": "10.1.1.1"}, {"X-Real-IP": "10.1.1.2"}):
            with pytest.raises(InvalidStatus) as refused:
                await open_reader(nginx, "127.0.0.5", forged)
            assert refused.value.response.status_code == 403
        opened += [await open_reader(nginx, "127.0.0.6") for _ in range(SOCKETS_PER_ADDRESS)]
    finally:
        for reader in opened:
            await reader.close()


async def test_a_reader_whose_daphne_stops_reconnects_and_runs_on_the_other(site, nginx):
    first, second = site.pids["daphne"], site.pids["daphne 2"]
    os.kill(second, signal.SIGSTOP)  # so nginx's connection for this reader lands on the first Daphne
    try:
        reader = await open_reader(nginx, "127.0.0.4")
        await reader.send(json.dumps({"type": "run", "demo": LONG_LOOP_RUN[0], "params": LONG_LOOP_RUN[1]}))
        accepted = json.loads(await asyncio.wait_for(reader.recv(), 15))
        assert accepted["type"] == "accepted", accepted
    finally:
        os.kill(second, signal.SIGCONT)
    os.kill(first, signal.SIGTERM)
    with pytest.raises(ConnectionClosed):  # the widget's JsonSocket reconnects after this
        while True:
            message = json.loads(await asyncio.wait_for(reader.recv(), 20))
            assert message["type"] != "finished" or message["status"] != "succeeded", "the run outlived its Daphne"
    events, finished = await stream_run(nginx, *LOOP_RUN, local_addr=("127.0.0.4", 0))
    assert finished["status"] == "succeeded" and events > 0
    assert site.pids["daphne 2"] == second  # the other process was never disturbed
