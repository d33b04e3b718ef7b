"""Every word the step-mode widget says about the counter race.

The lesson page carries it in the section's `data-step-mode` attribute, so
static/js knows the step protocol but no demo. Templates fill {name} from a
step's `result` ({n}), for verdicts from {start}, {final}, {lost}, and for a
level's goal lines from the evidence the sandbox read off the row ({start},
{counter}, {committed}). Kept apart from steps.py so the demo's declaration
can name it without loading models.
"""
from __future__ import annotations

from demos.library.counter_race.stepper_sandbox import ACTIONS

_SCENARIO_LABELS = {
    "read-modify-write": "Level 1: read, then write back (no lock)",
    "select-for-update": "Level 2: SELECT … FOR UPDATE (row lock)",
    "atomic-update": "Level 3: atomic UPDATE n = n + 1",
}
_GOAL = ("Make an increment vanish: have both transactions commit their +1 while the counter row ends lower than "
         "the number of increments committed.")
_REACHED = ("{committed} transactions committed an increment, yet the counter row says {counter}. "
            "One of them wrote back a number it had read before the other committed, and that overwrote the other's +1.")
# Each level's goal, whether some schedule reaches it, and what the page says once both transactions end
# without reaching it: for the fixed levels, why no schedule can.
_LEVELS = {
    "read-modify-write": {
        "goal": _GOAL, "reachable": True, "reached": _REACHED,
        "missed": ("The row says {counter} after {committed} commits, so nothing vanished. "
                   "One transaction read only after the other had committed. Step back and let both read before "
                   "either writes."),
    },
    "select-for-update": {
        "goal": _GOAL, "reachable": False, "reached": _REACHED,
        "missed": ("No order can do it: the row says {counter} after {committed} commits. "
                   "FOR UPDATE locks the row at the read, so the second reader waits for the first to commit and "
                   "then reads the new number; nobody is left holding a stale value to write back."),
    },
    "atomic-update": {
        "goal": _GOAL, "reachable": False, "reached": _REACHED,
        "missed": ("No order can do it: the row says {counter} after {committed} commits. "
                   "UPDATE … SET n = n + 1 reads and writes in a single statement that holds the row lock, so the "
                   "second UPDATE waits and then adds one to the committed number; no number ever passes through "
                   "Python to go stale."),
    },
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
        {"id": scenario, "label": _SCENARIO_LABELS[scenario], "actions": list(actions), "level": _LEVELS[scenario]}
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
