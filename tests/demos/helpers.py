"""Helpers for talking to the real ASGI app over a websocket in tests."""
from __future__ import annotations

import asyncio
import time
from contextlib import asynccontextmanager

from channels.testing import WebsocketCommunicator

ORIGIN = (b"origin", b"http://127.0.0.1")


@asynccontextmanager
async def demo_socket(path: str = "/ws/demos/"):
    """A connected websocket through coursesite.asgi.application; always disconnected."""
    from coursesite.asgi import application

    communicator = WebsocketCommunicator(application, path, headers=[ORIGIN])
    connected, _ = await communicator.connect()
    assert connected
    try:
        yield communicator
    finally:
        await communicator.disconnect()
        from coursesite.loop_db import close_for_this_loop

        await close_for_this_loop()  # this test's loop is about to end


async def receive_runs(communicator, run_ids: list[str], timeout: float = 30) -> dict[str, tuple[list[dict], dict]]:
    """Collect several runs' event batches until each has its `finished` message."""
    batches = {run_id: [] for run_id in run_ids}
    finished: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(finished) < len(run_ids):
        message = await communicator.receive_json_from(timeout=max(0.1, deadline - time.monotonic()))
        run_id = message.get("run")
        if run_id not in batches:
            raise AssertionError(f"unexpected message {message}")
        if message["type"] == "events":
            assert run_id not in finished, "events after finished"
            batches[run_id].append(message)
        elif message["type"] == "finished":
            finished[run_id] = message
        else:
            raise AssertionError(f"unexpected message {message}")
    return {run_id: (batches[run_id], finished[run_id]) for run_id in run_ids}


async def receive_until_finished(communicator, run_id: str, timeout: float = 30) -> tuple[list[dict], dict]:
    """Collect one run's event batches until its `finished` message."""
    return (await receive_runs(communicator, [run_id], timeout))[run_id]


async def start_run(communicator, demo: str, params: dict | None = None, ref: str = "r1") -> dict:
    await communicator.send_json_to({"type": "run", "demo": demo, "params": params or {}, "ref": ref})
    while True:
        accepted = await communicator.receive_json_from(timeout=10)
        if accepted["type"] not in {"events", "finished"}:  # other runs' stream messages
            break
    assert accepted["type"] == "accepted", accepted
    return accepted


class LoopLagMeter:
    """Measures how late this event loop wakes a 10 ms heartbeat."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.max_lag_ms = 0.0
        self._task: asyncio.Task | None = None

    async def _beat(self) -> None:
        while True:
            expected = time.perf_counter() + self.interval_s
            await asyncio.sleep(self.interval_s)
            self.max_lag_ms = max(self.max_lag_ms, (time.perf_counter() - expected) * 1000)

    async def __aenter__(self):
        self._task = asyncio.create_task(self._beat())
        return self

    async def __aexit__(self, *exc):
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)


async def open_lesson_demo(context, url: str):
    """Open a lesson in a browser context; return (page, its first demo widget once ready, console problems)."""
    page = await context.new_page()
    problems: list[str] = []
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on("console", lambda message: problems.append(message.text) if message.type == "error" else None)
    await page.goto(url)
    demo = page.locator("section.demo").first
    await demo.locator("xpath=.").and_(page.locator('[data-widget-state="ready"]')).wait_for(timeout=15_000)
    return page, demo, problems
