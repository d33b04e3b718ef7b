"""Every word the step-mode widget says about the counter race.

The lesson page carries it in the section's `data-step-mode` attribute, so
static/js knows the step protocol but no demo. Templates fill {name} from a
step's `result` ({n}) or, for verdicts, {start}, {final}, {lost}. Kept apart
from steps.py so the demo's declaration can name it without loading models.
"""
from __future__ import annotations

from demos.library.counter_race.stepper_sandbox import ACTIONS

_SCENARIO_LABELS = {
    "read-modify-write": "Read, then write back (no lock)",
    "select-for-update": "SELECT … FOR UPDATE (row lock)",
    "atomic-update": "Atomic UPDATE n = n + 1",
}
# Every word the step-mode widget says about this demo. The lesson page carries it in the
# section's data-step-mode attribute, so static/js knows the step protocol but no demo.
# Templates fill {name} from a step's `result` ({n}) or, for verdicts, {start}, {final}, {lost}.
STEP_TEXT = {
    "title": "Step through it: you are the scheduler",
    "intro": (
        "Two real transactions on two real PostgreSQL connections share one counter row that starts at 0. "
        "Press one statement at a time, in any order you like, and watch what each one sees."
    ),
    "value_label": "Committed counter",
    "scenarios": [
        {"id": scenario, "label": _SCENARIO_LABELS[scenario], "actions": list(actions)}
        for scenario, actions in ACTIONS.items()
    ],
    "actions": {"begin": "BEGIN", "read": "Read n", "write": "Write n + 1", "update": "UPDATE n + 1", "commit": "COMMIT"},
    "results": {
        "begin": "transaction open",
        "read": "n = {n}",
        "write": "wrote n = {n}",
        "update": "n is now {n} (for this transaction)",
        "commit": "committed",
    },
    "verdicts": {
        "failed": "A transaction failed and was rolled back; the counter went from {start} to {final}.",
        "kept": "Both transactions added one, and the counter went from {start} to {final}: nothing lost.",
        "lost_one": "Both transactions added one, but the counter went from {start} to {final}: one update was lost.",
        "lost_many": "Both transactions added one, but the counter went from {start} to {final}: {lost} updates were lost.",
    },
}
