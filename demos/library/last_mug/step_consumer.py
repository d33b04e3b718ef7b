"""The step-mode websocket of the last mug (/ws/steps/<slug>/): the engine's consumer, told this demo's scenarios.

The protocol and the bounds on sessions are the engine's (demos/step_mode.py);
what a session is (a sandbox with a real event loop) is steps.py's.
"""
from __future__ import annotations

from demos.library.last_mug.steps import SCENARIOS, StepSession
from demos.step_mode import StepModeConsumer


class StepConsumer(StepModeConsumer):
    scenarios = SCENARIOS

    async def start_session(self, *, scenario: str) -> tuple[StepSession, int]:
        """A fresh shop and two buyer tasks, on an event loop of their own, for `scenario`."""
        return await StepSession.start(scenario=scenario)
