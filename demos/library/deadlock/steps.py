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

import uuid
from pathlib import Path

from channels.db import database_sync_to_async

from demos.library.deadlock.models import DeadlockAccount
from demos.library.deadlock.step_sandbox import ACTIONS, APPLICATION_NAME
from demos.step_mode import SandboxError, SandboxStepSession, database_conninfo

# Run by path, not with -m: it imports nothing from the project, so nothing of the site loads into it.
SANDBOX_SCRIPT = Path(__file__).with_name("step_sandbox.py")

SCENARIOS = tuple(ACTIONS)

__all__ = ["APPLICATION_NAME", "SCENARIOS", "SandboxError", "StepSession", "database_conninfo"]


def _create_rows() -> tuple[str, dict[str, int]]:
    """Insert this session's rows A and B at balance 0; returns (session id, their primary keys by name)."""
    session_id = uuid.uuid4()
    rows = {name: DeadlockAccount.objects.create(run_id=session_id, name=name, balance=0).pk for name in ("A", "B")}
    return str(session_id), rows


def _delete_rows(session_id: str) -> None:
    DeadlockAccount.objects.filter(run_id=session_id).delete()


class StepSession(SandboxStepSession):
    """One reader's pair of transactions on rows A and B of its own."""

    @classmethod
    async def start(cls, *, scenario: str) -> tuple[StepSession, int]:
        """Create the rows, start the sandbox, wait until it is connected; returns (session, row A's balance)."""
        session_id, rows = await database_sync_to_async(_create_rows)()

        async def forget_rows() -> None:
            await database_sync_to_async(_delete_rows)(session_id)

        return await cls.launch(
            session_id=session_id, scenario=scenario, script=str(SANDBOX_SCRIPT), on_failure=forget_rows,
            arguments=["--table", DeadlockAccount._meta.db_table, "--row-a", str(rows["A"]), "--row-b", str(rows["B"])],
        )

    def actions(self) -> dict[str, list[str]]:
        """Each transaction's statements, in order: in `opposite-order` T2's differ from T1's."""
        return {tx: list(steps) for tx, steps in ACTIONS[self.scenario].items()}

    async def delete_rows(self) -> None:
        await database_sync_to_async(_delete_rows)(self.session_id)
