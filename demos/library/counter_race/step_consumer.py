"""The step-mode websocket of the counter race (/ws/steps/<slug>/): the engine's consumer, told this demo's scenarios.

Everything about the protocol and the bounds on sessions is the engine's
(demos/step_mode.py); what a session is (its sandbox and rows) is steps.py's.
"""
from __future__ import annotations

from demos.library.counter_race.steps import SCENARIOS, StepSession
from demos.step_mode import StepModeConsumer


class StepConsumer(StepModeConsumer):
    scenarios = SCENARIOS

    async def start_session(self, *, scenario: str) -> tuple[StepSession, int]:
        """A fresh pair of transactions (and rows of its own) for `scenario`."""
        return await StepSession.start(scenario=scenario)
