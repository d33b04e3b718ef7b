"""Every word the step-mode widget says about the last mug.

The lesson page carries it in the section's `data-step-mode` attribute, so
static/js knows the step protocol but no demo. A step's `result` fills the
templates: {seen} (the stock its check read), {stock}, {line}, {code},
{outcome}; a column's state line comes from `lane_states`, filled from that
task's snapshot ({line}, {code}, {holder}, {outcome}); a level's goal lines
from the evidence the sandbox read off its shop: {start}, {stock}, {got},
{buyers}, and once both returned {sold_out}, {lock_waited}. Kept apart from
steps.py so the demo's declaration can name it without starting anything.
"""
from __future__ import annotations

from demos.library.last_mug.task_sandbox import ACTIONS, buyer_source

_SCENARIO_LABELS = {
    "no-lock": "Level 1: check, await, decrement (no lock)",
    "with-lock": "Level 2: the same inside async with lock",
}
_GOAL = "Sell the last mug twice: both buyers get a mug and the stock ends at -1."
_REACHED = ("The shop's stock is {stock} and {buyers} both got a mug. Each checked the stock while it was still "
            "{start}, then waited at the await; by the time each decremented, its check was stale.")
# Each level's goal, whether some order of resumes reaches it, and what the page says once both buyers
# returned without it: for the locked level, why no order can.
_LEVELS = {
    "no-lock": {
        "goal": _GOAL, "reachable": True, "reached": _REACHED,
        "missed": ("The stock is {stock}: only {buyers} got the mug, and {sold_out} found it sold out. One buyer "
                   "checked only after the other had decremented. Step back and let both check before either "
                   "resumes."),
    },
    "with-lock": {
        "goal": _GOAL, "reachable": False, "reached": _REACHED,
        "missed": ("No order can do it: the stock is {stock} and only {buyers} got the mug. The check and the "
                   "decrement sit inside async with lock, so the second buyer stops at that line in lock-wait "
                   "while the first holds the lock across its await; when it gets the lock, the stock it checks "
                   "is already 0."),
    },
}
STEP_TEXT = {
    "title": "Step through it: you choose which task the event loop resumes",
    "intro": (
        "A real asyncio event loop runs two real tasks, T1 and T2, two buyers of the last mug in stock. Each checks "
        "the stock, awaits (the payment), then decrements. Nothing runs until you press: each press lets the loop "
        "resume that one task until it suspends at its next await or returns."
    ),
    "value_label": "Mugs in stock",
    "scenarios": [
        {"id": scenario, "label": _SCENARIO_LABELS[scenario], "actions": list(by_task["T1"]),
         "level": _LEVELS[scenario], "source": buyer_source(scenario)}
        for scenario, by_task in ACTIONS.items()
    ],
    "actions": {"start": "Run to its first await", "resume": "Resume after the await"},
    "results": {
        "start": "checked stock {seen}; now at line {line}: {code}",
        "resume": "stock is now {stock}; returned \u201c{outcome}\u201d",
    },
    "lane_states": {
        "queued": "queued: ready to start, not started yet",
        "running": "running: the loop is running this task",
        "waiting": "waiting: suspended at line {line} ({code}), ready to resume",
        "lock-wait": "lock-wait: stopped at line {line} ({code}) until {holder} releases the lock",
        "done": "done: returned \u201c{outcome}\u201d at line {line}",
    },
    "words": {
        "opening": "Starting a fresh event loop with two buyer tasks…",
        "reopening": "Stepping back: a fresh event loop, its two tasks resumed again in your order so far…",
        "opened": "The loop is ready and both tasks are queued. Press {first} in either column.",
        "blocked": "{tx} is in lock-wait: {holder} holds the lock, so {tx} cannot enter async with lock yet.",
        "blocked_result": "lock-wait: {holder} holds the lock",
        "ended": ("Both tasks have returned and the sandbox has stopped. Press Step back to take back the last "
                  "resume, or Start to try another order."),
        "goal_pending": "Choose which task the loop resumes next.",
    },
    "verdicts": {
        "ended": "Both buyers have returned: the stock went from {start} to {final}.",
        "failed": "A task failed; the stock went from {start} to {final}.",
        "kept": "The stock went from {start} to {final}.",
        "lost_one": "The stock went from {start} to {final}.",
        "lost_many": "The stock went from {start} to {final}.",
    },
}
