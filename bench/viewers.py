"""Many readers at once: each opens a websocket and runs a small one-cook.

An event's delay is the client's clock at receipt minus the server's clock at
the event (the batch's `started_at` plus the event's `t`): client and site run
on the same machine, so they share one clock.

Every reader ends in exactly one of three ways, counted apart:
- finished: its run streamed to `finished` with status succeeded;
- refused: the server answered `busy` with a `retry_after_s` (admission control);
- failed: anything else (a transport error, a timeout, another error code).

The client is made as cheap as the protocol allows, since it shares the
machine's cores with the site: no permessage-deflate, no keepalive pings, and
its cyclic collector off during the load. Its own CPU time is measured and
reported beside the server's.
"""
from __future__ import annotations

import asyncio
import gc
import json
import resource
import time

import websockets
from websockets.typing import Origin


async def _one_viewer(ws_url: str, origin: str, params: dict, delays_ms: list[float], delay_s: float = 0.0) -> dict:
    await asyncio.sleep(delay_s)  # readers arrive spread over the arrival window, not in one instant
    opened = time.perf_counter()
    async with websockets.connect(ws_url, origin=Origin(origin), max_size=None, open_timeout=60,
                                  compression=None, ping_interval=None) as socket:
        handshake_ms = (time.perf_counter() - opened) * 1000
        try:
            await socket.send(json.dumps({"type": "run", "demo": "one-cook", "params": params, "ref": "bench"}))
        except websockets.ConnectionClosed:
            pass  # a refused socket may be closed before the request goes out; its `busy` is still to be read
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
                return {"status": message["status"], "gaps": gaps, "repeats": repeats, "handshake_ms": handshake_ms}
            elif message["type"] == "error":
                status = "error:" + message["code"]
                if message["code"] == "busy" and isinstance(message.get("retry_after_s"), (int, float)):
                    status = "busy"
                return {"status": status, "gaps": gaps, "repeats": repeats, "handshake_ms": handshake_ms,
                        "retry_after_s": message.get("retry_after_s")}


def _quantile(values: list[float], quantile: float) -> float | None:
    """The value at this quantile of sorted `values`, or None when there are none."""
    if not values:
        return None
    return round(values[min(len(values) - 1, int(quantile * len(values)))], 1)


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# How often the client's own loop checks how late it runs: a delay the client adds is not the site's.
LAG_PROBE_S = 0.01


async def _probe_own_lag(lags_ms: list[float]) -> None:
    loop = asyncio.get_running_loop()
    while True:
        expected = loop.time() + LAG_PROBE_S
        await asyncio.sleep(LAG_PROBE_S)
        lags_ms.append(max(0.0, (loop.time() - expected) * 1000))


async def run_viewers(site_url: str, viewers: int, params: dict, *, arrival_s: float = 1.0) -> dict:
    """`viewers` readers arriving evenly over `arrival_s`, each running one one-cook; the counts and delays."""
    ws_url = site_url.replace("http://", "ws://") + "/ws/demos/"
    delays: list[float] = []
    lags: list[float] = []
    started, cpu_before = time.perf_counter(), _cpu_s()
    probe = asyncio.create_task(_probe_own_lag(lags))
    results = await asyncio.gather(
        *(_one_viewer(ws_url, site_url, params, delays, delay_s=index * arrival_s / max(viewers, 1))
          for index in range(viewers)),
        return_exceptions=True,
    )
    probe.cancel()
    elapsed, client_cpu = time.perf_counter() - started, _cpu_s() - cpu_before
    done = [r for r in results if isinstance(r, dict)]
    finished = sum(1 for r in done if r["status"] == "succeeded")
    refused = [r for r in done if r["status"] == "busy"]
    failures = [r["status"] if isinstance(r, dict) else f"{type(r).__name__}: {r}"
                for r in results if not (isinstance(r, dict) and r["status"] in ("succeeded", "busy"))]
    handshakes = sorted(r["handshake_ms"] for r in done)
    delays.sort()
    return {
        "viewers": viewers,
        "arrival_s": arrival_s,
        "finished": finished,
        "refused": len(refused),
        "failed": len(failures),
        "retry_after_s": sorted({r["retry_after_s"] for r in refused}),
        "gaps": sum(r["gaps"] for r in done),
        "repeats": sum(r["repeats"] for r in done),
        "delay_p50_ms": _quantile(delays, 0.50),
        "delay_p99_ms": _quantile(delays, 0.99),
        "handshake_p50_ms": _quantile(handshakes, 0.50),
        "handshake_p99_ms": _quantile(handshakes, 0.99),
        "events": len(delays),
        "elapsed_s": round(elapsed, 1),
        "client_cpu_s": round(client_cpu, 2),
        # The client's own lateness: how much of the delay above it can have added itself.
        "client_lag_p99_ms": _quantile(sorted(lags), 0.99),
        "client_lag_max_ms": round(max(lags), 1) if lags else None,
        "failures": failures[:5],
    }


def measure(site, *, viewers: int, params: dict, during=None, arrival_s: float = 1.0, url: str | None = None) -> dict:
    """Run the viewers; `during(site)` is called once while they stream (memory sampling)."""
    async def main():
        load = asyncio.create_task(run_viewers(url or site.url, viewers, params, arrival_s=arrival_s))
        sample = None
        if during is not None:
            await asyncio.sleep(1.0)
            sample = await asyncio.to_thread(during, site)
        result = await load
        result["sampled_during_load"] = sample
        return result

    # Thousands of sockets in this one process: a full collection here would stall
    # every reader at once and be counted as the site's delay. Collect after.
    gc.collect()
    gc.disable()
    try:
        return asyncio.run(main())
    finally:
        gc.enable()
        gc.collect()
