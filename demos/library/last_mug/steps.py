"""Step mode of the last mug: one reader, two real asyncio tasks in a sandbox process, one step per press.

A session is a fresh Python subprocess (`task_sandbox.py` beside this
module) running a real asyncio event loop with the two buyer tasks; the
engine's SandboxStepSession starts it, writes the reader's steps to its
stdin and relays its answers. The session has no database rows: the shop,
its stock and the lock live in the sandbox and end with it.
"""
from __future__ import annotations

import uuid
from pathlib import Path

from demos.library.last_mug.task_sandbox import ACTIONS
from demos.step_mode import SandboxStepSession

# Run by path, not with -m: it imports only the standard library, so nothing of the site loads into it.
SANDBOX_SCRIPT = Path(__file__).with_name("task_sandbox.py")

SCENARIOS = tuple(ACTIONS)


class StepSession(SandboxStepSession):
    """One reader's shop with one mug and two buyer tasks, on an event loop of its own."""

    uses_database = False

    @classmethod
    async def start(cls, *, scenario: str) -> tuple[StepSession, int]:
        """Start the sandbox and wait until its tasks exist; returns (session, the stock it starts with)."""

        async def nothing_to_undo() -> None:
            return None

        return await cls.launch(session_id=str(uuid.uuid4()), scenario=scenario, script=str(SANDBOX_SCRIPT),
                                arguments=[], on_failure=nothing_to_undo)

    def actions(self) -> dict[str, list[str]]:
        """Each task's steps, in order."""
        return {tx: list(steps) for tx, steps in ACTIONS[self.scenario].items()}

    async def delete_rows(self) -> None:
        """Nothing to delete: the shop lived in the sandbox, which has stopped."""
