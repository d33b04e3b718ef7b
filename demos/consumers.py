"""The demo websocket (/ws/demos/): validate, admit, hand to the supervisor, forward, clean up.

Protocol (README, "Demos and their protocol"): the client sends `run` and
`cancel`; the server answers `accepted`, `events` batches, `finished` and
`error`. How a run runs, on this loop or in a worker, is the supervisor's
business (demos/supervisor.py); frames, budgets and errors are the guarded
base's (demos/sockets.py).
"""
from __future__ import annotations

import logging
from typing import Any

from channels.consumer import get_handler_name
from django.conf import settings
from demos import supervisor
from demos.params import ParamError, TextParam, validate_params
from demos.registry import DEMOS, get_demo
from demos.sockets import ClientError, GuardedJsonConsumer

logger = logging.getLogger("demos.consumers")

MAX_REF_LENGTH = 100


def longest_text_param() -> int:
    """The longest text any demo's text parameter may hold (a program's source, say), in characters."""
    return max((param.max_length for demo in DEMOS.values() for param in demo.params if isinstance(param, TextParam)),
               default=0)


class DemoConsumer(GuardedJsonConsumer):
    # A run or cancel message is a few hundred bytes, plus the longest text parameter, JSON-escaped (twice its
    # length covers escaped newlines, quotes and backslashes); anything bigger is abuse.
    max_frame_chars = 16 * 1024 + 2 * longest_text_param()
    lease_kind = "demo-sockets"

    def sockets_per_address(self) -> int:
        return settings.DEMO_SOCKETS_PER_IP

    async def dispatch(self, message: dict) -> None:
        """As channels' own, minus its `close_old_connections` before every message.

        That call is a trip to Django's single sync thread, made for each
        connect, frame and disconnect of every socket, to tidy ORM connections
        this consumer never uses: run records go through coursesite.loop_db.
        Under a burst of readers those trips queued on that one thread
        (docs/adr/0002-dispatch-without-close-old-connections.md).
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        self.runs: dict[str, supervisor.SupervisedRun] = {}
        await self.accept()

    async def receive_json(self, content: Any, **kwargs: Any) -> None:
        kind = content.get("type")
        if kind == "run":
            await self.start_run(content)
        elif kind == "cancel":
            await self.cancel_run(content)
        else:
            raise ClientError("bad_message", "Unknown message type; expected `run` or `cancel`.")

    async def start_run(self, content: dict[str, Any]) -> None:
        ref = content.get("ref")
        if ref is not None and (not isinstance(ref, str) or len(ref) > MAX_REF_LENGTH):
            raise ClientError("bad_message", f"`ref` must be a string of at most {MAX_REF_LENGTH} characters.")
        extra: dict[str, Any] = {"ref": ref} if ref is not None else {}
        demo = get_demo(content.get("demo"))
        if demo is None:
            raise ClientError("unknown_demo", "There is no demo by that name; GET /api/demos/ lists them.", **extra)
        try:
            params = validate_params(demo, content.get("params"))
        except ParamError as error:
            raise ClientError("invalid_params", str(error), **extra) from None
        if len(self.runs) >= settings.DEMO_RUNS_PER_SOCKET:
            raise ClientError("busy", f"You already have {len(self.runs)} runs going; try again when one finishes.",
                              retry_after_s=1, **extra)
        try:
            run = await supervisor.start_run(
                demo=demo, params=params, ref=ref, send=self.safe_send, on_end=self._forget,
                channel_layer=self.channel_layer, channel_name=self.channel_name, client_address=self.client_address,
            )
        except supervisor.RunRefused as refused:
            if refused.retry_after_s is not None:
                extra["retry_after_s"] = refused.retry_after_s
            if refused.run_id is not None:
                extra["run"] = refused.run_id
            raise ClientError(refused.code, str(refused), **extra) from None
        if not run.ended:
            self.runs[run.run_id] = run

    def _forget(self, run: supervisor.SupervisedRun) -> None:
        self.runs.pop(run.run_id, None)

    async def cancel_run(self, content: dict[str, Any]) -> None:
        run_id = content.get("run")
        run = self.runs.get(run_id) if isinstance(run_id, str) else None
        if run is None:
            raise ClientError("unknown_run", "No run of yours with that id is in progress.",
                              **({"run": run_id} if isinstance(run_id, str) else {}))
        await run.cancel()

    async def run_message(self, event: dict[str, Any]) -> None:
        """A worker run's message, relayed from its group."""
        run = self.runs.get(str(event["message"].get("run")))
        if run is not None:
            await run.relay(event)

    async def run_alive(self, event: dict[str, Any]) -> None:
        """A worker run's heartbeat: it is still going."""
        run = self.runs.get(str(event.get("run")))
        if run is not None:
            await run.relay(event)

    async def run_unrecorded(self, event: dict[str, Any]) -> None:
        """A worker run ended without a recorded ending: the run ends from this side."""
        run = self.runs.get(str(event.get("run")))
        if run is not None:
            await run.relay(event)

    async def disconnect(self, code: int) -> None:
        await supervisor.settle(list(getattr(self, "runs", {}).values()), "Stopped: the reader left.")

    async def release_resources(self) -> None:
        # Daphne cancels consumers at shutdown, possibly in the middle of
        # their disconnect; every run still ends recorded.
        await supervisor.settle(list(getattr(self, "runs", {}).values()), "Stopped: the server shut down.")
