"""Every word the step-mode widget says about the deadlock demo.

The lesson page carries it in the section's `data-step-mode` attribute, so
static/js knows the step protocol but no demo. Templates fill {name} from a
step's `result` ({balance}) or, for verdicts, {start}, {final}, {lost}. The
"committed value" the widget tracks is row A's balance: each transaction adds
one to both rows, so it counts the transactions that committed. Kept apart
from steps.py so the demo's declaration can name it without loading models.
A level's goal lines are filled from the evidence the sandbox got from the
server: {victim}, {sqlstate}, {message} for a deadlock, {committed} otherwise.
"""
from __future__ import annotations

from demos.library.deadlock.step_sandbox import ACTIONS

_SCENARIO_LABELS = {
    "opposite-order": "Level 1: opposite orders (T1: A then B, T2: B then A)",
    "same-order": "Level 2: one order (both: A then B)",
}
_GOAL = "Make the two transactions deadlock, so that PostgreSQL itself has to abort one of them."
_REACHED = ("PostgreSQL aborted {victim} with its own error, \u201c{message}\u201d (SQLSTATE {sqlstate}). "
            "Each transaction held one row and waited for the other's, a cycle no amount of waiting ends, so the "
            "server rolled one back.")
# Each level's goal, whether some schedule reaches it, and what the page says once both transactions end
# without reaching it: for the fixed level, why no schedule can.
_LEVELS = {
    "opposite-order": {
        "goal": _GOAL, "reachable": True, "reached": _REACHED,
        "missed": ("Both transactions ended and PostgreSQL aborted neither. Step back and let "
                   "each one take its first row before either reaches for its second."),
    },
    "same-order": {
        "goal": _GOAL, "reachable": False, "reached": _REACHED,
        "missed": ("No order can do it: both transactions lock row A first, so the one that "
                   "comes second waits at A while holding nothing. The one holding A can always take B and commit, "
                   "so no wait ever closes into a cycle."),
    },
}
STEP_TEXT = {
    "title": "Step through it: make the deadlock yourself",
    "intro": (
        "Two real transactions on two real PostgreSQL connections each add one to the same two rows, A and B, "
        "which start at 0. Every UPDATE keeps its row locked until that transaction ends. Press one statement at a "
        "time: with opposite orders, can you get each transaction holding the row the other one wants next?"
    ),
    "value_label": "Committed balance of row A",
    "scenarios": [
        {"id": scenario, "label": _SCENARIO_LABELS[scenario], "actions": list(by_tx["T1"]),
         "actions_by_tx": {tx: list(steps) for tx, steps in by_tx.items()}, "level": _LEVELS[scenario]}
        for scenario, by_tx in ACTIONS.items()
    ],
    "actions": {"begin": "BEGIN", "update-a": "UPDATE row A", "update-b": "UPDATE row B", "commit": "COMMIT"},
    "results": {
        "begin": "transaction open",
        "update-a": "row A is {balance} for this transaction",
        "update-b": "row B is {balance} for this transaction",
        "commit": "committed",
    },
    "verdicts": {
        "failed": ("One transaction was rolled back, so only one +1 reached the rows: row A went from {start} to "
                   "{final}. Its line in the log gives PostgreSQL's own account of why."),
        "kept": ("Both transactions committed and row A went from {start} to {final}: where they met, one waited for "
                 "the other to commit. With opposite orders that took a kind schedule; with one order it always will."),
        "lost_one": "Both transactions committed, yet row A went from {start} to {final}: one addition is missing.",
        "lost_many": "Both transactions committed, yet row A went from {start} to {final}: {lost} additions are missing.",
    },
}
