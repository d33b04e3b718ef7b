"""Step mode of the deadlock demo: one reader, two transactions, two rows, one statement at a time.

A step session owns a fresh pair of DeadlockAccount rows (A and B, under the
session's id) and a sandbox subprocess (`step_sandbox.py` beside this module)
holding the two transactions' connections. Statements that wait for a row
lock, or end as a deadlock victim, do so in that subprocess; this side only
writes JSON lines to its stdin and reads its stdout with asyncio, so the web
event loop never blocks. Ending a session stops the subprocess (which closes
its connections) and then deletes the rows.
"""
from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
import uuid
from pathlib import Path

from channels.db import database_sync_to_async
from django.conf import settings

from demos.library.deadlock.models import DeadlockAccount
from demos.library.deadlock.step_sandbox import ACTIONS, APPLICATION_NAME
from demos.step_mode import SandboxError, StepErrorMessage, StepMessage, database_conninfo

logger = logging.getLogger("demos.deadlock.steps")
# Run by path, not with -m: it imports nothing from the project, so nothing of the site loads into it.
SANDBOX_SCRIPT = Path(__file__).with_name("step_sandbox.py")

SCENARIOS = tuple(ACTIONS)
# How long the sandbox may take to connect twice and say it is ready.
START_TIMEOUT_S = 15
# How long a stopping sandbox may take to roll back and close before it is killed.
STOP_TIMEOUT_S = 5

__all__ = ["APPLICATION_NAME", "SCENARIOS", "SandboxError", "StepSession", "database_conninfo"]


def _create_rows() -> tuple[str, dict[str, int]]:
    """Insert this session's rows A and B at balance 0; returns (session id, their primary keys by name)."""
    session_id = uuid.uuid4()
    rows = {name: DeadlockAccount.objects.create(run_id=session_id, name=name, balance=0).pk for name in ("A", "B")}
    return str(session_id), rows


def _delete_rows(session_id: str) -> None:
    DeadlockAccount.objects.filter(run_id=session_id).delete()


class StepSession:
    """One reader's pair of transactions: rows, subprocess, and the task reading its output."""

    def __init__(self, *, session_id: str, scenario: str, process: asyncio.subprocess.Process) -> None:
        self.session_id = session_id
        self.scenario = scenario
        self.process = process
        stdin, stdout = process.stdin, process.stdout
        assert stdin is not None and stdout is not None  # start() asks for both pipes
        self.stdin, self.stdout = stdin, stdout
        self.reader: asyncio.Task | None = None
        self.ended = False

    @classmethod
    async def start(cls, *, scenario: str) -> tuple[StepSession, int]:
        """Create the rows, start the sandbox, wait until it is connected; returns (session, row A's balance)."""
        conninfo = await database_sync_to_async(database_conninfo)()
        session_id, rows = await database_sync_to_async(_create_rows)()
        try:
            # stderr is inherited: a sandbox's traceback belongs in the web server's log.
            process = await asyncio.create_subprocess_exec(
                sys.executable, str(SANDBOX_SCRIPT),
                "--session", session_id, "--scenario", scenario,
                "--table", DeadlockAccount._meta.db_table, "--row-a", str(rows["A"]), "--row-b", str(rows["B"]),
                cwd=str(settings.BASE_DIR), env={**os.environ, "STEPPER_CONNINFO": conninfo},
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            await database_sync_to_async(_delete_rows)(session_id)
            raise SandboxError(f"could not start the sandbox: {error}") from error
        session = cls(session_id=session_id, scenario=scenario, process=process)
        try:
            line = await asyncio.wait_for(session.stdout.readline(), START_TIMEOUT_S)
            ready = json.loads(line) if line else {}
            if not ready.get("ready"):
                raise SandboxError("the sandbox exited before it was ready")
        except (TimeoutError, ValueError, SandboxError) as error:
            await session.stop()
            raise SandboxError(str(error) or "the sandbox did not start in time") from error
        return session, int(ready["counter"])

    def actions(self) -> dict[str, list[str]]:
        """Each transaction's statements, in order: in `opposite-order` T2's differ from T1's."""
        return {tx: list(steps) for tx, steps in ACTIONS[self.scenario].items()}

    async def send(self, *, tx: str, action: str) -> None:
        """Hand a step to the sandbox; its answer arrives through `messages()`."""
        self.stdin.write((json.dumps({"tx": tx, "action": action}) + "\n").encode())
        await self.stdin.drain()

    async def messages(self):
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
            else:
                step: StepMessage = {
                    "type": "step", "session": self.session_id, "tx": answer["tx"], "action": answer["action"],
                    "sql": answer["sql"], "status": answer["status"], "result": answer["result"],
                    "counter_committed": answer["counter_committed"],
                }
                yield step

    async def stop(self) -> None:
        """Stop the sandbox (closing its connections), then delete the rows. Safe to call twice."""
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
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT_S)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self.reader is not None and self.reader is not asyncio.current_task():
            self.reader.cancel()
            await asyncio.gather(self.reader, return_exceptions=True)
        await database_sync_to_async(_delete_rows)(self.session_id)
