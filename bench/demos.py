"""Run a demo over the site's websocket, as a reader would, and return its summary."""
from __future__ import annotations

import asyncio
import json
import time

import psycopg
import websockets
from websockets.typing import Origin


async def _run(site_url: str, slug: str, params: dict, timeout_s: float) -> dict:
    ws_url = site_url.replace("http://", "ws://") + "/ws/demos/"
    async with websockets.connect(ws_url, origin=Origin(site_url), max_size=None) as socket:
        await socket.send(json.dumps({"type": "run", "demo": slug, "params": params, "ref": "bench"}))
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), timeout=timeout_s))
            if message["type"] == "finished":
                return {"status": message["status"], **message["summary"]}
            if message["type"] == "error":
                return {"status": "error", "code": message["code"], "text": message["message"]}


def run_demo(site, slug: str, params: dict, timeout_s: float = 180) -> dict:
    return asyncio.run(_run(site.url, slug, params, timeout_s))


def wait_until_settled(site, timeout_s: float = 60) -> int:
    """Wait until the site has no run still going (the tail of a previous load); return how many were left."""
    deadline = time.monotonic() + timeout_s
    with psycopg.connect(site.services["DATABASE_URL"], autocommit=True) as connection:
        while True:
            [(running,)] = connection.execute("SELECT count(*) FROM demos_run WHERE status = 'running'").fetchall()
            if running == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
    time.sleep(1)  # the records' last writes and the sockets' closing
    return running


def run_demo_repeatedly(site, slug: str, params: dict, times: int, key, warmups: int = 0) -> dict:
    """Run a demo `warmups` + `times` times in a row; the measured run with the median `key`,
    plus every measured run's summary and the warm-ups' (reported, not counted)."""
    warmup_runs = [run_demo(site, slug, params) for _ in range(warmups)]
    runs = [run_demo(site, slug, params) for _ in range(times)]
    succeeded = sorted((run for run in runs if run.get("status") == "succeeded"), key=key)
    if len(succeeded) < times:
        return next(run for run in runs if run.get("status") != "succeeded")
    return {**succeeded[len(succeeded) // 2], "runs": runs, "warmup_runs": warmup_runs}
