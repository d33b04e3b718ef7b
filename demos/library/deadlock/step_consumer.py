"""The deadlock demo's step-mode websocket (/ws/steps/deadlock/): the reader schedules two transactions by hand.

Client → server: `open` {scenario, ref}, `step` {session, tx, action},
`close` {session}. Server → client: `opened`, `step` (status "blocked" first
when a statement waits for a lock, then "done", or "error" for a deadlock
victim, with PostgreSQL's message, SQLSTATE and detail), `closed` {reason:
closed | idle | failed} and `error` {code}. The same protocol as the counter
race's step mode (the browser widget is shared); this consumer is a copy kept
in this package so the demo stays self-contained. It validates, starts a
StepSession, forwards its answers, and ends every session when the socket
closes or a session sits idle too long.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import Literal

from django.conf import settings

from demos.limits import STEP_SOCKETS, AddressLease, step_session_lease
from demos.library.deadlock.steps import SCENARIOS, ClosedMessage, OpenedMessage, SandboxError, StepSession
from demos.sockets import ClientError, GuardedJsonConsumer

logger = logging.getLogger("demos.deadlock.step_consumer")

# A session ends after this long without a step from its reader (its connections may hold row locks).
IDLE_LIMIT_S = settings.DEMO_STEP_IDLE_S
MAX_SESSIONS_PER_SOCKET = 2
# Each session is a subprocess with three PostgreSQL connections; this caps them per web process.
MAX_SESSIONS_PER_PROCESS = 12
MAX_REF_LENGTH = 100
TRANSACTIONS = ("T1", "T2")

_sessions_in_process = 0


class StepConsumer(GuardedJsonConsumer):
    lease_kind = STEP_SOCKETS

    def sockets_per_address(self) -> int:
        return settings.DEMO_STEP_SOCKETS_PER_ADDRESS

    async def connect(self) -> None:
        self.sessions: dict[str, StepSession] = {}
        self.session_leases: dict[str, AddressLease] = {}
        self.last_step: dict[str, float] = {}
        self.idle_watchers: dict[str, asyncio.Task] = {}
        self.endings: set[asyncio.Task] = set()
        self.opening = 0
        await self.accept()

    async def receive_json(self, content: dict, **kwargs) -> None:
        kind = content.get("type")
        if kind == "open":
            await self.open_session(content)
        elif kind == "step":
            await self.step(content)
        elif kind == "close":
            session = self._session(content)
            await self.end_session(session, reason="closed")
        else:
            raise ClientError("bad_message", "Unknown message type; expected `open`, `step` or `close`.")

    def _session(self, content: dict) -> StepSession:
        session_id = content.get("session")
        session = self.sessions.get(session_id) if isinstance(session_id, str) else None
        if session is None:
            raise ClientError("unknown_session", "No open step session of yours has that id; open a new one.")
        return session

    async def open_session(self, content: dict) -> None:
        global _sessions_in_process
        ref = content.get("ref")
        if ref is not None and (not isinstance(ref, str) or len(ref) > MAX_REF_LENGTH):
            raise ClientError("bad_message", f"`ref` must be a string of at most {MAX_REF_LENGTH} characters.")
        extra = {"ref": ref} if ref is not None else {}
        scenario = content.get("scenario")
        if scenario not in SCENARIOS:
            raise ClientError("bad_message", f"`scenario` must be one of {', '.join(SCENARIOS)}.", **extra)
        if len(self.sessions) + self.opening >= MAX_SESSIONS_PER_SOCKET:
            raise ClientError("busy", f"You already have {MAX_SESSIONS_PER_SOCKET} step sessions open; close one first.",
                              retry_after_s=IDLE_LIMIT_S, **extra)
        if _sessions_in_process >= MAX_SESSIONS_PER_PROCESS:
            raise ClientError("busy", "Too many readers are stepping through transactions right now; try again in a minute.",
                              retry_after_s=60, **extra)
        lease = step_session_lease(self.client_address)
        retry_after = await lease.acquire()
        if retry_after is not None:
            raise ClientError("busy", "Your address already has as many step sessions open as it may; close one first.",
                              retry_after_s=retry_after, **extra)
        self.opening += 1
        _sessions_in_process += 1
        started = False
        try:
            session, counter = await StepSession.start(scenario=scenario)
            started = True
        except SandboxError:
            logger.exception("could not start a step session")
            raise ClientError("unavailable", "The database sandbox could not start; try again shortly.", **extra) from None
        finally:
            self.opening -= 1
            if not started:
                _sessions_in_process -= 1
                await lease.release()
        self.sessions[session.session_id] = session
        self.session_leases[session.session_id] = lease
        self.last_step[session.session_id] = time.monotonic()
        opened: OpenedMessage = {
            "type": "opened", "session": session.session_id, "scenario": scenario,
            "actions": session.actions(), "counter": counter, "ref": ref,
        }
        await self.send_json(opened)
        session.reader = asyncio.create_task(self._forward(session))
        self.idle_watchers[session.session_id] = asyncio.create_task(self._watch_idle(session))

    async def step(self, content: dict) -> None:
        session = self._session(content)
        tx, action = content.get("tx"), content.get("action")
        if tx not in TRANSACTIONS or not isinstance(action, str) or len(action) > 20:
            raise ClientError("bad_message", "A step names `tx` (T1 or T2) and an `action`.", session=session.session_id)
        self.last_step[session.session_id] = time.monotonic()
        try:
            await session.send(tx=tx, action=action)
        except (BrokenPipeError, ConnectionResetError):
            await self.end_session(session, reason="failed")

    async def _forward(self, session: StepSession) -> None:
        """Relay the sandbox's answers; if it exits on its own, the session is over."""
        async for message in session.messages():
            if not session.ended:  # a statement cancelled by the ending itself is not news
                await self.safe_send(message)
        if not session.ended:
            # A new task: ending the session cancels this reader, which must not cancel the ending.
            ending = asyncio.create_task(self.end_session(session, reason="failed"))
            self.endings.add(ending)
            ending.add_done_callback(self.endings.discard)

    async def _watch_idle(self, session: StepSession) -> None:
        while True:
            quiet_for = time.monotonic() - self.last_step.get(session.session_id, 0)
            if quiet_for >= IDLE_LIMIT_S:
                break
            await asyncio.sleep(IDLE_LIMIT_S - quiet_for)
        await self.end_session(session, reason="idle")

    async def end_session(self, session: StepSession, *, reason: Literal["closed", "idle", "failed"]) -> None:
        global _sessions_in_process
        if self.sessions.pop(session.session_id, None) is None:
            return  # already ending
        _sessions_in_process -= 1
        self.last_step.pop(session.session_id, None)
        watcher = self.idle_watchers.pop(session.session_id, None)
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()
        lease = self.session_leases.pop(session.session_id, None)
        try:
            await session.stop()
        finally:
            if lease is not None:
                await lease.release()
            closed: ClosedMessage = {"type": "closed", "session": session.session_id, "reason": reason}
            await self.safe_send(closed)

    async def disconnect(self, code) -> None:
        await self.release_resources()

    async def release_resources(self) -> None:
        """End every session this socket holds (and wait for endings already under way)."""
        sessions = list(getattr(self, "sessions", {}).values())
        await asyncio.gather(*(self.end_session(session, reason="closed") for session in sessions),
                             *getattr(self, "endings", ()), return_exceptions=True)
