"""Step mode of the counter race: one reader, two transactions, one statement at a time.

A step session owns a fresh RaceCounter row and a sandbox subprocess
(`stepper_sandbox.py` beside this module) holding the two transactions' connections.
Statements that wait for a row lock wait in that subprocess; this side only
writes JSON lines to its stdin and reads its stdout with asyncio, so the web
event loop never blocks. Ending a session stops the subprocess (which closes
its connections) and then deletes the row.
"""
from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

from channels.db import database_sync_to_async

from demos.library.counter_race.models import RaceCounter
from demos.library.counter_race.stepper_sandbox import ACTIONS, APPLICATION_NAME
from demos.step_mode import SandboxError, SandboxStepSession, database_conninfo

# Run by path, not with -m: it imports nothing from the project, so nothing of the site loads into it.
SANDBOX_SCRIPT = Path(__file__).with_name("stepper_sandbox.py")

SCENARIOS = tuple(ACTIONS)

__all__ = ["APPLICATION_NAME", "SCENARIOS", "SandboxError", "StepSession", "database_conninfo"]


def _create_row() -> tuple[str, int]:
    counter = RaceCounter.objects.create(run_id=uuid.uuid4(), n=0)
    return str(counter.run_id), counter.pk


def _delete_row(row_id: int) -> None:
    RaceCounter.objects.filter(pk=row_id).delete()


class StepSession(SandboxStepSession):
    """One reader's pair of transactions on a counter row of its own."""

    def __init__(self, *, row_id: int, **session: Any) -> None:
        super().__init__(**session)
        self.row_id = row_id

    @classmethod
    async def start(cls, *, scenario: str) -> tuple[StepSession, int]:
        """Create the row, start the sandbox, wait until it is connected; returns (session, counter)."""
        session_id, row_id = await database_sync_to_async(_create_row)()

        async def forget_row() -> None:
            await database_sync_to_async(_delete_row)(row_id)

        return await cls.launch(
            session_id=session_id, scenario=scenario, script=str(SANDBOX_SCRIPT), on_failure=forget_row, row_id=row_id,
            arguments=["--table", RaceCounter._meta.db_table, "--row-id", str(row_id)],
        )

    def actions(self) -> dict[str, list[str]]:
        return {"T1": list(ACTIONS[self.scenario]), "T2": list(ACTIONS[self.scenario])}

    async def delete_rows(self) -> None:
        await database_sync_to_async(_delete_row)(self.row_id)
