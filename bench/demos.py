"""Run a demo over the site's websocket, as a reader would, and return its summary."""
from __future__ import annotations

import asyncio
import json

import websockets


async def _run(site_url: str, slug: str, params: dict, timeout_s: float) -> dict:
    ws_url = site_url.replace("http://", "ws://") + "/ws/demos/"
    async with websockets.connect(ws_url, origin=site_url, max_size=None) as socket:
        await socket.send(json.dumps({"type": "run", "demo": slug, "params": params, "ref": "bench"}))
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), timeout=timeout_s))
            if message["type"] == "finished":
                return {"status": message["status"], **message["summary"]}
            if message["type"] == "error":
                return {"status": "error", "code": message["code"], "text": message["message"]}


def run_demo(site, slug: str, params: dict, timeout_s: float = 180) -> dict:
    return asyncio.run(_run(site.url, slug, params, timeout_s))
