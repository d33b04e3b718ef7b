"""Many readers at once: each opens a websocket and runs a small one-cook.

An event's delay is the client's clock at receipt minus the server's clock at
the event (the batch's `started_at` plus the event's `t`): client and site run
on the same machine, so they share one clock.
"""
from __future__ import annotations

import asyncio
import gc
import json
import time

import websockets
from websockets.typing import Origin


async def _one_viewer(ws_url: str, origin: str, params: dict, delays_ms: list[float], delay_s: float = 0.0) -> dict:
    await asyncio.sleep(delay_s)  # readers arrive over about a second, not in one instant
    async with websockets.connect(ws_url, origin=Origin(origin), max_size=None, open_timeout=60) as socket:
        await socket.send(json.dumps({"type": "run", "demo": "one-cook", "params": params, "ref": "bench"}))
        expected_seq, gaps, repeats = 0, 0, 0
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), timeout=120))
            received_ms = time.time() * 1000
            if message["type"] == "events":
                if message["seq"] > expected_seq:
                    gaps += 1
                elif message["seq"] < expected_seq:
                    repeats += 1
                expected_seq = message["seq"] + 1
                started_ms = message["started_at"] * 1000
                for event in message["events"]:
                    delays_ms.append(received_ms - started_ms - event["t"])
            elif message["type"] == "finished":
                return {"status": message["status"], "gaps": gaps, "repeats": repeats}
            elif message["type"] == "error":
                return {"status": "error:" + message["code"], "gaps": gaps, "repeats": repeats}


async def _run_viewers(site_url: str, viewers: int, params: dict) -> dict:
    ws_url = site_url.replace("http://", "ws://") + "/ws/demos/"
    delays: list[float] = []
    started = time.perf_counter()
    results = await asyncio.gather(
        *(_one_viewer(ws_url, site_url, params, delays, delay_s=index / max(viewers, 1)) for index in range(viewers)),
        return_exceptions=True,
    )
    elapsed = time.perf_counter() - started
    finished = sum(1 for r in results if isinstance(r, dict) and r["status"] == "succeeded")
    failures = [r["status"] if isinstance(r, dict) else repr(r)
                for r in results if not (isinstance(r, dict) and r["status"] == "succeeded")]
    delays.sort()

    def pick(quantile: float) -> float | None:
        """The delay at this quantile of every delay received, or None when none arrived."""
        if not delays:
            return None
        return round(delays[min(len(delays) - 1, int(quantile * len(delays)))], 1)

    return {
        "viewers": viewers,
        "finished": finished,
        "gaps": sum(r["gaps"] for r in results if isinstance(r, dict)),
        "repeats": sum(r["repeats"] for r in results if isinstance(r, dict)),
        "delay_p50_ms": pick(0.50),
        "delay_p99_ms": pick(0.99),
        "events": len(delays),
        "elapsed_s": round(elapsed, 1),
        "failures": failures[:5],
    }


def measure(site, *, viewers: int, params: dict, during=None) -> dict:
    """Run the viewers; `during(site)` is called once while they stream (memory sampling)."""
    async def main():
        load = asyncio.create_task(_run_viewers(site.url, viewers, params))
        sample = None
        if during is not None:
            await asyncio.sleep(1.0)
            sample = await asyncio.to_thread(during, site)
        result = await load
        result["sampled_during_load"] = sample
        return result

    # A thousand sockets in this one process: a full collection here would stall
    # every reader at once and be counted as the site's delay. Collect after.
    gc.collect()
    gc.disable()
    try:
        return asyncio.run(main())
    finally:
        gc.enable()
        gc.collect()
