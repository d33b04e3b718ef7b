"""Step mode, the engine's part: the reader schedules a demo's transactions by hand, one step at a time.

Protocol on `/ws/steps/<slug>/` (README, "Demos and their protocol"):
client -> server `open` {scenario, ref, replay?}, `step` {session, tx, action},
`close` {session}; server -> client `opened`, `step` (status "blocked" first
when a statement waits for a lock, then "done" or "error"), `goal` {status:
reached | missed, evidence}, `replayed` {steps, of}, `closed` {reason: closed
| idle | failed} and `error` {code}. A demo with a step mode subclasses
StepModeConsumer with its scenarios and how a session starts (its own
sandbox process and rows: demos/library/<slug>/steps.py); the message shapes
and the bounds on sessions live here, once.

Each scenario is a level: its sandbox judges the level's goal from the
database (the rows it reads, the errors the server raises) and says so once
per session; the engine only relays that as `goal`. "Step back" is an `open`
with `replay`, the schedule to run again: a fresh session (new rows, new
sandbox) whose transactions the engine steps through those statements, each
sent once its transaction is free, so the reader gets the same `step`
answers as the first time and then `replayed`. PostgreSQL may still decide
differently (which of two waiting transactions it aborts depends on timing);
a replayed step it refuses ends the replay there, and `replayed` says how far
it got.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar, Literal, Protocol, TypedDict

from channels.db import database_sync_to_async
from django.conf import settings
from django.db import connection
from psycopg.conninfo import make_conninfo

from demos.limits import STEP_SOCKETS, AddressLease, step_session_lease
from demos.sockets import ClientError, GuardedJsonConsumer

logger = logging.getLogger("demos.step_mode")

MAX_SESSIONS_PER_SOCKET = 2
MAX_SESSIONS_PER_PROCESS = 12
MAX_REF_LENGTH = 100
MAX_ACTION_LENGTH = 20
TRANSACTIONS = ("T1", "T2")
# A replayed schedule is at most this long: far more than two transactions' statements.
MAX_REPLAY_STEPS = 40
# How long a replayed statement may wait for its transaction to be free, and then for its own answer;
# past it the replay stops where it is (a wait PostgreSQL no longer resolves, say).
REPLAY_STEP_TIMEOUT_S = 15.0


class OpenedMessage(TypedDict):
    type: Literal["opened"]
    session: str
    scenario: str
    actions: dict[str, list[str]]
    counter: int
    ref: Any
    replay: list[list[str]]


class StepMessage(TypedDict):
    type: Literal["step"]
    session: str
    tx: Literal["T1", "T2"]
    action: str
    sql: str
    status: Literal["done", "blocked", "error"]
    result: dict[str, Any]
    counter_committed: int | None


class GoalMessage(TypedDict):
    """The sandbox's judgement of the level's goal, from the database: `missed` once both ended without it."""

    type: Literal["goal"]
    session: str
    status: Literal["reached", "missed"]
    evidence: dict[str, Any]


class ReplayedMessage(TypedDict):
    """A replay is over: `steps` of the `of` statements asked for ran again."""

    type: Literal["replayed"]
    session: str
    steps: int
    of: int


class ClosedMessage(TypedDict):
    type: Literal["closed"]
    session: str
    reason: Literal["closed", "idle", "failed"]


class StepErrorMessage(TypedDict, total=False):
    type: Literal["error"]
    code: str
    message: str
    session: str
    tx: str
    action: str
    ref: Any


class SandboxError(RuntimeError):
    """The sandbox could not start or stopped talking."""


class StepSession(Protocol):
    """What a demo's step session offers the consumer."""

    session_id: str
    reader: asyncio.Task | None
    ended: bool

    def actions(self) -> dict[str, list[str]]: ...

    async def send(self, *, tx: str, action: str) -> None: ...

    def messages(self) -> AsyncIterator[Any]: ...

    async def stop(self) -> None: ...


def database_conninfo() -> str:
    """A libpq conninfo for Django's default database (the test database under pytest)."""
    database = connection.settings_dict
    options = database.get("OPTIONS") or {}
    fields = {
        "dbname": database["NAME"],
        "user": database.get("USER") or None,
        "password": database.get("PASSWORD") or None,
        "host": options.get("host") or database.get("HOST") or None,
        "port": str(database["PORT"]) if database.get("PORT") else None,
    }
    return make_conninfo(**{name: value for name, value in fields.items() if value})



# How long a sandbox may take to connect its transactions and say it is ready.
SANDBOX_START_TIMEOUT_S = 15
# How long a stopping sandbox may take to roll back and close before it is killed.
SANDBOX_STOP_TIMEOUT_S = 5


# What a sandbox inherits from the web server's environment: enough to run Python, nothing of the site's
# (no secret key, no Redis or database address); a database session gets its own conninfo and no more.
SANDBOX_INHERITED_VARIABLES = ("PATH", "LANG", "LC_ALL", "TZ")


def sandbox_environment(conninfo: str | None) -> dict[str, str]:
    """The environment a step sandbox starts with."""
    environment = {name: os.environ[name] for name in SANDBOX_INHERITED_VARIABLES if name in os.environ}
    if conninfo is not None:
        environment["STEPPER_CONNINFO"] = conninfo
    return environment


class SandboxStepSession:
    """A step session whose transactions live in a sandbox subprocess speaking JSON lines.

    The subprocess holds the database connections, so a statement waiting
    for a lock waits there; this side only writes a line per step to its
    stdin and reads its answers from stdout with asyncio, and the web event
    loop never blocks. A demo's session says how to make and delete its rows
    and which statements each transaction has; starting, stepping, relaying
    and stopping are the same for every demo.
    """

    # A session whose transactions are not PostgreSQL's (asyncio tasks) says False and gets no conninfo.
    uses_database = True

    def __init__(self, *, session_id: str, scenario: str, process: asyncio.subprocess.Process) -> None:
        self.session_id = session_id
        self.scenario = scenario
        self.process = process
        stdin, stdout = process.stdin, process.stdout
        assert stdin is not None and stdout is not None  # launch() asks for both pipes
        self.stdin, self.stdout = stdin, stdout
        self.reader: asyncio.Task | None = None
        self.ended = False

    async def delete_rows(self) -> None:
        """Delete the rows this session made (called once the sandbox has stopped)."""
        raise NotImplementedError

    def actions(self) -> dict[str, list[str]]:
        """Each transaction's statements, in order."""
        raise NotImplementedError

    @classmethod
    async def launch(cls, *, session_id: str, scenario: str, script: str, arguments: list[str],
                     on_failure: Callable[[], Awaitable[None]], **fields: Any) -> tuple[Any, int]:
        """Start the sandbox `script` and wait until it says it is ready; (session, the counter it reports).

        `on_failure` undoes what was made for the session if the process cannot even start.
        """
        environment = sandbox_environment(await database_sync_to_async(database_conninfo)() if cls.uses_database else None)
        try:
            # stderr is inherited: a sandbox's traceback belongs in the web server's log.
            process = await asyncio.create_subprocess_exec(
                sys.executable, script, "--session", session_id, "--scenario", scenario, *arguments,
                cwd=str(settings.BASE_DIR), env=environment,
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            await on_failure()
            raise SandboxError(f"could not start the sandbox: {error}") from error
        session = cls(session_id=session_id, scenario=scenario, process=process, **fields)
        try:
            line = await asyncio.wait_for(session.stdout.readline(), SANDBOX_START_TIMEOUT_S)
            ready = json.loads(line) if line else {}
            if not ready.get("ready"):
                raise SandboxError("the sandbox exited before it was ready")
        except (TimeoutError, ValueError, SandboxError) as error:
            await session.stop()
            raise SandboxError(str(error) or "the sandbox did not start in time") from error
        return session, int(ready["counter"])

    async def send(self, *, tx: str, action: str) -> None:
        """Hand a step to the sandbox; its answer arrives through `messages()`."""
        self.stdin.write((json.dumps({"tx": tx, "action": action}) + "\n").encode())
        await self.stdin.drain()

    async def messages(self) -> AsyncIterator[StepMessage | GoalMessage | StepErrorMessage]:
        """The sandbox's answers, as protocol messages, until it exits."""
        while True:
            line = await self.stdout.readline()
            if not line:
                return
            try:
                answer = json.loads(line)
            except ValueError:
                logger.warning("step session %s: a line that is not JSON from the sandbox", self.session_id)
                continue
            if "error" in answer:
                error: StepErrorMessage = {
                    "type": "error", "code": answer["error"], "message": answer.get("message", ""),
                    "session": self.session_id, "tx": answer.get("tx"), "action": answer.get("action"),
                }
                yield error
            elif "goal" in answer:
                status: Literal["reached", "missed"] = "reached" if answer["goal"] == "reached" else "missed"
                goal: GoalMessage = {"type": "goal", "session": self.session_id, "status": status,
                                     "evidence": dict(answer.get("evidence") or {})}
                yield goal
            else:
                step: StepMessage = {
                    "type": "step", "session": self.session_id, "tx": answer["tx"], "action": answer["action"],
                    "sql": answer["sql"], "status": answer["status"], "result": answer["result"],
                    "counter_committed": answer["counter_committed"],
                }
                yield step

    async def stop(self) -> None:
        """Stop the sandbox (closing its connections), then delete the session's rows. Safe to call twice."""
        if self.ended:
            return
        self.ended = True
        process = self.process
        if process.returncode is None:
            try:
                self.stdin.write(b'{"quit": true}\n')
                await self.stdin.drain()
                self.stdin.close()
            except (BrokenPipeError, ConnectionResetError):
                pass
            try:
                await asyncio.wait_for(process.wait(), SANDBOX_STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self.reader is not None and self.reader is not asyncio.current_task():
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        await self.delete_rows()


class StatementsOut:
    """Which transactions of a session have a statement out, as its answers tell; what a replay waits on.

    A step is out from the moment it is sent until its first answer (or its
    refusal); a statement answered "blocked" stays running until its final
    answer. Each transaction has at most one statement out: the sandbox
    refuses a second as busy.
    """

    def __init__(self) -> None:
        self.unanswered = dict.fromkeys(TRANSACTIONS, 0)
        self.waiting = dict.fromkeys(TRANSACTIONS, False)
        self.refusals = 0
        self._changed = asyncio.Condition()

    def sent(self, tx: str) -> None:
        self.unanswered[tx] += 1

    async def observe(self, message: Any) -> None:
        """Account for one message from the sandbox."""
        tx = message.get("tx")
        if tx not in self.unanswered:
            return
        if message["type"] == "step":
            if not self.waiting[tx]:
                self.unanswered[tx] = max(0, self.unanswered[tx] - 1)
            self.waiting[tx] = message["status"] == "blocked"
        elif message["type"] == "error" and self.unanswered[tx]:
            self.unanswered[tx] -= 1
            self.refusals += 1
        async with self._changed:
            self._changed.notify_all()

    def free(self, tx: str) -> bool:
        return not self.unanswered[tx] and not self.waiting[tx]

    async def until_free(self, tx: str) -> bool:
        """Wait until `tx` has nothing out; False if that takes longer than REPLAY_STEP_TIMEOUT_S."""
        return await self._wait_until(lambda: self.free(tx))

    async def until_answered(self, tx: str) -> bool:
        """Wait for the first answer (or the refusal) of the step just sent to `tx`."""
        return await self._wait_until(lambda: not self.unanswered[tx])

    async def _wait_until(self, predicate: Callable[[], bool]) -> bool:
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(predicate), REPLAY_STEP_TIMEOUT_S)
            except TimeoutError:
                return False
        return True


def replay_steps(raw: Any) -> list[tuple[str, str]]:
    """An `open` message's `replay`, checked: a list of [tx, action] pairs. ClientError if it is not one."""
    if raw is None:
        return []
    problem = f"`replay` must be a list of at most {MAX_REPLAY_STEPS} [tx, action] pairs, tx being T1 or T2."
    if not isinstance(raw, list) or len(raw) > MAX_REPLAY_STEPS:
        raise ClientError("bad_message", problem)
    steps = []
    for pair in raw:
        if (not isinstance(pair, list) or len(pair) != 2 or pair[0] not in TRANSACTIONS
                or not isinstance(pair[1], str) or not pair[1] or len(pair[1]) > MAX_ACTION_LENGTH):
            raise ClientError("bad_message", problem)
        steps.append((pair[0], pair[1]))
    return steps


class StepModeConsumer(GuardedJsonConsumer):
    """The websocket of one demo's step mode; a demo's consumer names its scenarios and how a session starts.

    Sessions hold real resources (a sandbox process, database connections,
    rows), so they are bounded per socket, per process (per demo) and per
    address, end when their socket closes, and end after `idle_limit_s`
    without a step.
    """

    lease_kind = STEP_SOCKETS
    scenarios: tuple[str, ...] = ()
    idle_limit_s: float = settings.DEMO_STEP_IDLE_S
    max_sessions_per_socket = MAX_SESSIONS_PER_SOCKET
    # Each session is a subprocess with a few PostgreSQL connections; this caps them per web process.
    max_sessions_per_process = MAX_SESSIONS_PER_PROCESS
    _sessions_in_process: ClassVar[int] = 0  # counted per demo: each subclass gets its own on first change

    async def start_session(self, *, scenario: str) -> tuple[StepSession, int]:
        """Start a session of `scenario`; (session, the counter it starts from). SandboxError if it cannot."""
        raise NotImplementedError

    @classmethod
    def _count_session(cls, change: int) -> None:
        cls._sessions_in_process = cls._sessions_in_process + change

    def sockets_per_address(self) -> int:
        return settings.DEMO_STEP_SOCKETS_PER_ADDRESS

    async def connect(self) -> None:
        self.sessions: dict[str, StepSession] = {}
        self.session_leases: dict[str, AddressLease] = {}
        self.last_step: dict[str, float] = {}
        self.idle_watchers: dict[str, asyncio.Task] = {}
        self.statements_out: dict[str, StatementsOut] = {}
        self.replays: dict[str, asyncio.Task] = {}
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
        ref = content.get("ref")
        if ref is not None and (not isinstance(ref, str) or len(ref) > MAX_REF_LENGTH):
            raise ClientError("bad_message", f"`ref` must be a string of at most {MAX_REF_LENGTH} characters.")
        extra = {"ref": ref} if ref is not None else {}
        scenario = content.get("scenario")
        if scenario not in self.scenarios:
            raise ClientError("bad_message", f"`scenario` must be one of {', '.join(self.scenarios)}.", **extra)
        try:
            replay = replay_steps(content.get("replay"))
        except ClientError as error:
            raise ClientError(error.code, str(error), **extra) from None
        if len(self.sessions) + self.opening >= self.max_sessions_per_socket:
            raise ClientError("busy", f"You already have {self.max_sessions_per_socket} step sessions open; close one first.",
                              retry_after_s=self.idle_limit_s, **extra)
        if type(self)._sessions_in_process >= self.max_sessions_per_process:
            raise ClientError("busy", "Too many readers are stepping through this demo right now; try again in a minute.",
                              retry_after_s=60, **extra)
        lease = step_session_lease(self.client_address)
        retry_after = await lease.acquire()
        if retry_after is not None:
            raise ClientError("busy", "Your address already has as many step sessions open as it may; close one first.",
                              retry_after_s=retry_after, **extra)
        self.opening += 1
        self._count_session(+1)
        started = False
        try:
            session, counter = await self.start_session(scenario=scenario)
            started = True
        except SandboxError:
            logger.exception("could not start a step session")
            raise ClientError("unavailable", "The database sandbox could not start; try again shortly.", **extra) from None
        finally:
            self.opening -= 1
            if not started:
                self._count_session(-1)
                await lease.release()
        self.sessions[session.session_id] = session
        self.session_leases[session.session_id] = lease
        self.last_step[session.session_id] = time.monotonic()
        self.statements_out[session.session_id] = StatementsOut()
        opened: OpenedMessage = {
            "type": "opened", "session": session.session_id, "scenario": scenario,
            "actions": session.actions(), "counter": counter, "ref": ref,
            "replay": [[tx, action] for tx, action in replay],
        }
        await self.send_json(opened)
        session.reader = asyncio.create_task(self._forward(session))
        self.idle_watchers[session.session_id] = asyncio.create_task(self._watch_idle(session))
        if replay:
            # A task of its own: replaying takes seconds (a wait for a lock, the server's cycle check), and the
            # socket must stay free meanwhile for a close or another session.
            self.replays[session.session_id] = asyncio.create_task(self._replay(session, replay))

    async def _replay(self, session: StepSession, steps: list[tuple[str, str]]) -> None:
        """Step a fresh session through `steps`, each once its transaction is free; then say how far it got."""
        out = self.statements_out[session.session_id]
        replayed = 0
        for tx, action in steps:
            if not await out.until_free(tx):
                break
            refusals = out.refusals
            out.sent(tx)
            self.last_step[session.session_id] = time.monotonic()
            try:
                await session.send(tx=tx, action=action)
            except (BrokenPipeError, ConnectionResetError):
                break  # the sandbox is gone; its reader ends the session
            if not await out.until_answered(tx) or out.refusals > refusals:
                break
            replayed += 1
        self.replays.pop(session.session_id, None)
        done: ReplayedMessage = {"type": "replayed", "session": session.session_id, "steps": replayed, "of": len(steps)}
        await self.safe_send(done)

    async def step(self, content: dict) -> None:
        session = self._session(content)
        tx, action = content.get("tx"), content.get("action")
        if tx not in TRANSACTIONS or not isinstance(action, str) or len(action) > MAX_ACTION_LENGTH:
            raise ClientError("bad_message", "A step names `tx` (T1 or T2) and an `action`.", session=session.session_id)
        if session.session_id in self.replays:
            raise ClientError("busy", "This session is still replaying your schedule; step once it has caught up.",
                              session=session.session_id, tx=tx, action=action)
        self.last_step[session.session_id] = time.monotonic()
        self.statements_out[session.session_id].sent(tx)
        try:
            await session.send(tx=tx, action=action)
        except (BrokenPipeError, ConnectionResetError):
            await self.end_session(session, reason="failed")

    async def _forward(self, session: StepSession) -> None:
        """Relay the sandbox's answers; if it exits on its own, the session is over."""
        out = self.statements_out[session.session_id]
        async for message in session.messages():
            if not session.ended:  # a statement cancelled by the ending itself is not news
                await self.safe_send(message)
                await out.observe(message)
        if not session.ended:
            # A new task: ending the session cancels this reader, which must not cancel the ending.
            ending = asyncio.create_task(self.end_session(session, reason="failed"))
            self.endings.add(ending)
            ending.add_done_callback(self.endings.discard)

    async def _watch_idle(self, session: StepSession) -> None:
        while True:
            quiet_for = time.monotonic() - self.last_step.get(session.session_id, 0)
            if quiet_for >= self.idle_limit_s:
                break
            await asyncio.sleep(self.idle_limit_s - quiet_for)
        await self.end_session(session, reason="idle")

    async def end_session(self, session: StepSession, *, reason: Literal["closed", "idle", "failed"]) -> None:
        if self.sessions.pop(session.session_id, None) is None:
            return  # already ending
        self._count_session(-1)
        self.last_step.pop(session.session_id, None)
        watcher = self.idle_watchers.pop(session.session_id, None)
        if watcher is not None and watcher is not asyncio.current_task():
            watcher.cancel()
        replaying = self.replays.pop(session.session_id, None)
        if replaying is not None and replaying is not asyncio.current_task():
            replaying.cancel()
        self.statements_out.pop(session.session_id, None)
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
