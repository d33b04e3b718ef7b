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

Some of the readers (`OBSERVER_READERS`) are run by a second client process,
the observer, arriving over the same window and meeting the same door. The
load client holds thousands of sockets and its loop runs seconds late while
it opens them: an event it reads then is counted late by the client, not by
the site. The observer holds a hundred and is never late (its own lag is
reported), so its delays are what a reader on a machine of their own would
see; the delay targets are judged on them (docs/adr/0025-a-lag-bound-of-50-ms.md).
"""
from __future__ import annotations

import asyncio
import gc
import json
import resource
import subprocess
import sys
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


async def run_viewers(site_url: str, viewers: int, params: dict, *, arrival_s: float = 1.0,
                      raw: bool = False) -> dict:
    """`viewers` readers arriving evenly over `arrival_s`, each running one one-cook; the counts and delays
    (with every delay and handshake time as well when `raw`, for merging with another client's)."""
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
    row = {
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
    if raw:
        row.update(delays_ms=[round(d, 1) for d in delays], handshakes_ms=[round(h, 1) for h in handshakes])
    return row


# Readers run by the observer process, at most half the load. A hundred readers give 1,600 events, enough for
# a p99 (the 16th-largest); fewer events than MIN_EVENTS_FOR_P99 and no p99 is reported.
OBSERVER_READERS = 100
MIN_EVENTS_FOR_P99 = 1000
# The observer is a fresh interpreter: time enough to import websockets before the arrivals begin.
OBSERVER_START_S = 2.0


def _merged(load: dict, observer: dict) -> dict:
    """The load's row with the observer's readers counted in: counts summed, quantiles over both, the
    observer's own delays beside."""
    row = dict(load)
    for key in ("viewers", "finished", "refused", "failed", "gaps", "repeats", "events"):
        row[key] = load[key] + observer[key]
    row["retry_after_s"] = sorted(set(load["retry_after_s"]) | set(observer["retry_after_s"]))
    row["failures"] = (load["failures"] + observer["failures"])[:5]
    row["client_cpu_s"] = round(load["client_cpu_s"] + observer["client_cpu_s"], 2)
    delays = sorted(row.pop("delays_ms") + observer["delays_ms"])
    handshakes = sorted(row.pop("handshakes_ms") + observer["handshakes_ms"])
    row.update(delay_p50_ms=_quantile(delays, 0.50), delay_p99_ms=_quantile(delays, 0.99),
               handshake_p50_ms=_quantile(handshakes, 0.50), handshake_p99_ms=_quantile(handshakes, 0.99))
    enough = observer["events"] >= MIN_EVENTS_FOR_P99
    row["observer"] = {
        "readers": observer["viewers"], "finished": observer["finished"], "refused": observer["refused"],
        "failed": observer["failed"], "events": observer["events"],
        "delay_p50_ms": observer["delay_p50_ms"], "delay_p99_ms": observer["delay_p99_ms"] if enough else None,
        "lag_p99_ms": observer["client_lag_p99_ms"], "lag_max_ms": observer["client_lag_max_ms"],
    }
    return row


def observed_p99_ms(row: dict) -> float | None:
    """The event-delay p99 the targets are judged on: the observer's, or None when it had too few events."""
    return (row.get("observer") or {}).get("delay_p99_ms")


def describe_delays(row: dict) -> str:
    """`p50 / p99` of the observer, then of every admitted reader: the cell the bench's tables show."""
    observer = row.get("observer") or {}
    p99 = observer.get("delay_p99_ms")
    return (f"{observer.get('delay_p50_ms')} / {p99 if p99 is not None else 'too few events'} "
            f"(all: {row['delay_p50_ms']} / {row['delay_p99_ms']})")


def measure(site, *, viewers: int, params: dict, during=None, arrival_s: float = 1.0, url: str | None = None) -> dict:
    """Run the viewers, `OBSERVER_READERS` of them (at most half) from the observer process, arriving together;
    `during(site)` is called once while they stream (memory sampling)."""
    target = url or site.url
    observers = min(OBSERVER_READERS, viewers // 2)
    start_at = time.time() + OBSERVER_START_S
    observer = subprocess.Popen(
        [sys.executable, "-m", "bench.viewers", target, str(observers), json.dumps(params), repr(start_at),
         repr(arrival_s)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    async def main():
        await asyncio.sleep(max(0.0, start_at - time.time()))
        load = asyncio.create_task(run_viewers(target, viewers - observers, params, arrival_s=arrival_s, raw=True))
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
        load = asyncio.run(main())
    except BaseException:
        observer.kill()
        observer.wait()
        raise
    finally:
        gc.enable()
        gc.collect()
    out, err = observer.communicate(timeout=300)
    if observer.returncode != 0:
        raise RuntimeError(f"the observer client failed ({observer.returncode}): {err[-2000:]}")
    return _merged(load, json.loads(out))


def _observe(argv: list[str]) -> None:
    """`python -m bench.viewers URL COUNT PARAMS START_AT ARRIVAL_S`: the observer's readers, from START_AT."""
    url, count, params, start_at, arrival_s = argv[0], int(argv[1]), json.loads(argv[2]), float(argv[3]), float(argv[4])
    time.sleep(max(0.0, start_at - time.time()))
    print(json.dumps(asyncio.run(run_viewers(url, count, params, arrival_s=arrival_s, raw=True))))


if __name__ == "__main__":
    _observe(sys.argv[1:])
