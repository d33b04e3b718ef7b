"""Step mode of the counter race: one reader, two transactions, one statement at a time.

A step session owns a fresh RaceCounter row and a sandbox subprocess
(`stepper_sandbox.py` beside this module) holding the two transactions' connections.
Statements that wait for a row lock wait in that subprocess; this side only
writes JSON lines to its stdin and reads its stdout with asyncio, so the web
event loop never blocks. Ending a session stops the subprocess (which closes
its connections) and then deletes the row.
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

from demos.library.counter_race.models import RaceCounter
from demos.library.counter_race.stepper_sandbox import ACTIONS, APPLICATION_NAME
from demos.step_mode import SandboxError, StepErrorMessage, StepMessage, database_conninfo

logger = logging.getLogger("demos.counter_race.steps")
# Run by path, not with -m: it imports nothing from the project, so nothing of the site loads into it.
SANDBOX_SCRIPT = Path(__file__).with_name("stepper_sandbox.py")

SCENARIOS = tuple(ACTIONS)
# How long the sandbox may take to connect twice and say it is ready.
START_TIMEOUT_S = 15
# How long a stopping sandbox may take to roll back and close before it is killed.
STOP_TIMEOUT_S = 5

__all__ = ["APPLICATION_NAME", "SCENARIOS", "SandboxError", "StepSession", "database_conninfo"]


def _create_row() -> tuple[str, int]:
    counter = RaceCounter.objects.create(run_id=uuid.uuid4(), n=0)
    return str(counter.run_id), counter.pk


def _delete_row(row_id: int) -> None:
    RaceCounter.objects.filter(pk=row_id).delete()


class StepSession:
    """One reader's pair of transactions: row, subprocess, and the task reading its output."""

    def __init__(self, *, session_id: str, scenario: str, row_id: int, process: asyncio.subprocess.Process) -> None:
        self.session_id = session_id
        self.scenario = scenario
        self.row_id = row_id
        self.process = process
        stdin, stdout = process.stdin, process.stdout
        assert stdin is not None and stdout is not None  # start() asks for both pipes
        self.stdin, self.stdout = stdin, stdout
        self.reader: asyncio.Task | None = None
        self.ended = False

    @classmethod
    async def start(cls, *, scenario: str) -> tuple[StepSession, int]:
        """Create the row, start the sandbox, wait until it is connected; returns (session, counter)."""
        conninfo = await database_sync_to_async(database_conninfo)()
        session_id, row_id = await database_sync_to_async(_create_row)()
        try:
            # stderr is inherited: a sandbox's traceback belongs in the web server's log.
            process = await asyncio.create_subprocess_exec(
                sys.executable, str(SANDBOX_SCRIPT),
                "--session", session_id, "--scenario", scenario,
                "--table", RaceCounter._meta.db_table, "--row-id", str(row_id),
                cwd=str(settings.BASE_DIR), env={**os.environ, "STEPPER_CONNINFO": conninfo},
                stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
            )
        except OSError as error:
            await database_sync_to_async(_delete_row)(row_id)
            raise SandboxError(f"could not start the sandbox: {error}") from error
        session = cls(session_id=session_id, scenario=scenario, row_id=row_id, process=process)
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
        return {"T1": list(ACTIONS[self.scenario]), "T2": list(ACTIONS[self.scenario])}

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
        """Stop the sandbox (closing its connections), then delete the row. Safe to call twice."""
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
        await database_sync_to_async(_delete_row)(self.row_id)
