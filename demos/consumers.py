"""The demo websocket: validate, look up, start, forward, clean up.

Protocol (see README, "Demo protocol"): the client sends `run` and `cancel`;
the server answers `accepted`, `events` batches, `finished` and `error`.
Loop-placed runs are tasks on this event loop; worker-placed runs are Celery
tasks whose messages arrive through the run's channel-layer group.
"""
from __future__ import annotations

import asyncio
import atexit
import logging
import threading
import time
from dataclasses import dataclass

from asgiref.sync import sync_to_async
from channels.consumer import get_handler_name
from django.conf import settings
from redis.exceptions import RedisError

from coursesite.loop_db import DatabaseUnavailable
from demos import workers
from demos.limits import acquire_slot, redis_client, release_slot, socket_admit, socket_release
from demos.models import Run
from demos.params import ParamError, validate_params
from demos.registry import get_demo
from demos.runner import WORKER_SILENCE_S, run_on_loop
from demos.sender import cancel_key, run_group
from demos.services import run_create_on_loop, run_finish_on_loop
from demos.sockets import ClientError, GuardedJsonConsumer
from demos.tasks import run_worker_demo

logger = logging.getLogger("demos.consumers")

MAX_REF_LENGTH = 100
# How long a worker run may sit in the queue, on top of its time limit, before it is abandoned.
QUEUE_GRACE_S = 10


# Runs this process is serving. If the server stops without its consumers
# getting to clean up (Daphne's SIGTERM path), they are recorded at exit.
_runs_in_this_process: set[str] = set()


def _record_runs_left_at_exit() -> None:
    if not _runs_in_this_process:
        return

    def record() -> None:  # in a thread: no event loop there, so the sync ORM is allowed
        from demos.services import runs_cancel

        runs_cancel(run_ids=list(_runs_in_this_process), summary={"text": "Stopped: the server shut down."})

    worker = threading.Thread(target=record)
    worker.start()
    worker.join(timeout=10)


atexit.register(_record_runs_left_at_exit)


@dataclass
class InFlightRun:
    run_id: str
    placement: str
    task: asyncio.Task | None = None  # loop runs
    watchdog: asyncio.Task | None = None  # worker runs: ends them if the worker never does
    last_heard: float | None = None  # worker runs: when the worker last spoke


class DemoConsumer(GuardedJsonConsumer):
    async def dispatch(self, message: dict) -> None:
        """As channels' own, minus its `close_old_connections` before every message.

        That call is a trip to Django's single sync thread, made for each
        connect, frame and disconnect of every socket, to tidy ORM connections
        this consumer never uses: run records go through coursesite.loop_db.
        Under a burst of readers those trips queued on that one thread.
        """
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def connect(self) -> None:
        self.runs: dict[str, InFlightRun] = {}
        self.client_ip = (self.scope.get("client") or ["unknown"])[0]
        self.counted_ip = False
        try:
            admitted = await socket_admit(ip=self.client_ip)
        except RedisError:
            admitted = True  # the IP cap is a courtesy; do not lock readers out over it
        else:
            self.counted_ip = True
        if not admitted:
            await self.close(code=4429)  # handshake refused: too many sockets from this address
            return
        await self.accept()

    async def receive_json(self, content: dict, **kwargs) -> None:
        kind = content.get("type")
        if kind == "run":
            await self.start_run(content)
        elif kind == "cancel":
            await self.cancel_run(content)
        else:
            raise ClientError("bad_message", "Unknown message type; expected `run` or `cancel`.")

    async def start_run(self, content: dict) -> None:
        ref = content.get("ref")
        if ref is not None and (not isinstance(ref, str) or len(ref) > MAX_REF_LENGTH):
            raise ClientError("bad_message", f"`ref` must be a string of at most {MAX_REF_LENGTH} characters.")
        extra = {"ref": ref} if ref is not None else {}
        demo = get_demo(content.get("demo"))
        if demo is None:
            raise ClientError("unknown_demo", "There is no demo by that name; GET /api/demos/ lists them.", **extra)
        try:
            params = validate_params(demo, content.get("params"))
        except ParamError as error:
            raise ClientError("invalid_params", str(error), **extra) from None
        if len(self.runs) >= settings.DEMO_RUNS_PER_SOCKET:
            raise ClientError(
                "busy",
                f"You already have {len(self.runs)} runs going; try again when one finishes.",
                retry_after_s=1, **extra,
            )
        if demo.placement == "worker" and not await workers.available():
            raise ClientError("unavailable", "No demo worker is running right now, so this demo cannot start.", **extra)
        try:
            run_id = await run_create_on_loop(demo_slug=demo.slug, placement=demo.placement, params=params)
        except DatabaseUnavailable:
            # Nothing was written; the next run request connects afresh.
            raise ClientError("unavailable", "The run records are unavailable right now; try again shortly.", **extra) from None
        try:
            retry_after = await acquire_slot(placement=demo.placement, run_id=run_id, time_limit_s=demo.time_limit_s)
        except RedisError:
            await run_finish_on_loop(run_id=run_id, status=Run.Status.FAILED, summary={"text": "Not started: Redis is unavailable."})
            raise ClientError("unavailable", "The demo service is unavailable right now; try again shortly.", **extra) from None
        if retry_after is not None:
            await run_finish_on_loop(run_id=run_id, status=Run.Status.CANCELLED, summary={"text": "Not started: the site was busy."})
            raise ClientError(
                "busy", f"Too many demos are running across the site; try again in about {retry_after:.0f} s.",
                retry_after_s=round(retry_after, 1), **extra,
            )
        in_flight = InFlightRun(run_id=run_id, placement=demo.placement)
        self.runs[run_id] = in_flight
        _runs_in_this_process.add(run_id)
        await self.send_json({"type": "accepted", "ref": ref, "run": run_id, "demo": demo.slug, "params": params})
        if demo.placement == "loop":
            in_flight.task = asyncio.create_task(self._run_loop_demo(in_flight, demo, params))
            self.loop_tasks.add(in_flight.task)
            in_flight.task.add_done_callback(self.loop_tasks.discard)
        else:
            try:
                await self._dispatch_to_worker(run_id, demo, params)
            except Exception:  # broker unreachable
                await self._end_worker_run(in_flight, Run.Status.FAILED, {"text": "Not started: the job queue is unavailable."})
                raise ClientError("unavailable", "The job queue is unavailable right now; try again shortly.", run=run_id) from None
            in_flight.watchdog = asyncio.create_task(self._watch_worker_run(in_flight, demo.time_limit_s))

    async def _dispatch_to_worker(self, run_id: str, demo, params: dict) -> None:
        """Join the run's group and enqueue it; one retry, since the first use of
        a connection after Redis restarted can fail where the second succeeds."""
        for attempt in (1, 2):
            try:
                await self.channel_layer.group_add(run_group(run_id), self.channel_name)
                await sync_to_async(run_worker_demo.apply_async)(
                    args=[run_id, demo.slug, params], soft_time_limit=demo.time_limit_s, time_limit=demo.time_limit_s + 5
                )
                return
            except Exception:
                if attempt == 2:
                    raise
                await asyncio.sleep(0.2)

    async def _run_loop_demo(self, in_flight: InFlightRun, demo, params: dict) -> None:
        try:
            await run_on_loop(run_id=in_flight.run_id, demo=demo, params=params, send=self.send_json)
        finally:
            self.runs.pop(in_flight.run_id, None)
            _runs_in_this_process.discard(in_flight.run_id)
            await self._release(in_flight)

    async def _watch_worker_run(self, in_flight: InFlightRun, time_limit_s: float) -> None:
        """A worker that died mid-run never reports; end the run for it.

        Once a run has started, its worker speaks every second; five seconds of
        silence means it is gone. Before it starts (queued behind other jobs)
        only the overall deadline applies.
        """
        deadline = time.monotonic() + time_limit_s + QUEUE_GRACE_S
        while time.monotonic() < deadline:
            await asyncio.sleep(1)
            if in_flight.last_heard is not None and time.monotonic() - in_flight.last_heard > WORKER_SILENCE_S:
                break
        await self._end_worker_run(
            in_flight, Run.Status.FAILED, {"text": "The worker running this demo stopped answering; the run was abandoned."}
        )

    async def _end_worker_run(self, in_flight: InFlightRun, status: str, summary: dict) -> None:
        """End a worker run from this side (cancel, disconnect, dead worker)."""
        self.runs.pop(in_flight.run_id, None)
        _runs_in_this_process.discard(in_flight.run_id)
        recorded = await run_finish_on_loop(run_id=in_flight.run_id, status=status, summary=summary)
        try:
            await redis_client().set(cancel_key(in_flight.run_id), 1, ex=120)
        except RedisError:
            logger.warning("could not flag run %s as cancelled", in_flight.run_id)
        await self._leave_group(in_flight)
        await self._release(in_flight)
        if in_flight.watchdog is not None and in_flight.watchdog is not asyncio.current_task():
            in_flight.watchdog.cancel()
        if recorded:
            await self.safe_send({"type": "finished", "run": in_flight.run_id, "status": status, "summary": summary})

    async def _leave_group(self, in_flight: InFlightRun) -> None:
        try:
            await self.channel_layer.group_discard(run_group(in_flight.run_id), self.channel_name)
        except (RedisError, OSError):
            logger.warning("could not leave the group of run %s; it expires by itself", in_flight.run_id)

    async def _release(self, in_flight: InFlightRun) -> None:
        try:
            await release_slot(placement=in_flight.placement, run_id=in_flight.run_id)
        except RedisError:
            logger.warning("could not release the slot of run %s; it expires by itself", in_flight.run_id)

    async def run_alive(self, event: dict) -> None:
        in_flight = self.runs.get(event.get("run"))
        if in_flight is not None:
            in_flight.last_heard = time.monotonic()

    async def run_message(self, event: dict) -> None:
        """A worker run's message, relayed from its group."""
        message = event["message"]
        in_flight = self.runs.get(message.get("run"))
        if in_flight is None:
            return  # already ended here (cancelled or abandoned)
        in_flight.last_heard = time.monotonic()
        await self.send_json(message)
        if message["type"] == "finished":
            self.runs.pop(in_flight.run_id, None)
            _runs_in_this_process.discard(in_flight.run_id)
            if in_flight.watchdog is not None:
                in_flight.watchdog.cancel()
            await self._leave_group(in_flight)
            await self._release(in_flight)

    async def cancel_run(self, content: dict) -> None:
        run_id = content.get("run")
        in_flight = self.runs.get(run_id) if isinstance(run_id, str) else None
        if in_flight is None:
            raise ClientError("unknown_run", "No run of yours with that id is in progress.", **({"run": run_id} if isinstance(run_id, str) else {}))
        if in_flight.task is not None:
            in_flight.task.cancel()
            await asyncio.wait([in_flight.task])  # unlike gather, never cancels the run's own recording
        else:
            await self._end_worker_run(in_flight, Run.Status.CANCELLED, {"text": "Stopped by the reader."})

    async def disconnect(self, code) -> None:
        if getattr(self, "counted_ip", False):
            self.counted_ip = False
            try:
                await socket_release(ip=self.client_ip)
            except RedisError:
                logger.warning("could not release the socket count of %s", self.client_ip)
        await self._stop_all_runs("Stopped: the reader left.")

    async def __call__(self, scope, receive, send):
        self.loop_tasks: set[asyncio.Task] = set()
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Daphne cancels consumers at shutdown, possibly in the middle of
            # their disconnect; runs must still end recorded, not "running" for
            # ever, so this waits for every run task to finish its record.
            cleanup = asyncio.ensure_future(self._stop_all_runs("Stopped: the server shut down."))
            while True:
                pending = [task for task in (cleanup, *self.loop_tasks) if not task.done()]
                if not pending:
                    break
                try:
                    await asyncio.shield(asyncio.wait(pending))
                except asyncio.CancelledError:
                    continue

    async def _stop_all_runs(self, reason: str) -> None:
        for in_flight in list(getattr(self, "runs", {}).values()):
            if in_flight.task is not None:
                in_flight.task.cancel()
                await asyncio.wait([in_flight.task])  # unlike gather, never cancels the run's own recording
            else:
                await self._end_worker_run(in_flight, Run.Status.CANCELLED, {"text": reason})
        self.runs.clear()
