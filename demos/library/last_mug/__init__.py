"""The last mug: asyncio tasks that check the stock, await, then decrement can sell one mug twice.

`buyers` asyncio tasks on one event loop each try to buy from a shop with
`stock` mugs: check that the stock is above zero, await (the payment; here
`asyncio.sleep(0)`, which only hands the loop to the other tasks), then
take one. In `no-lock` mode every buyer passes its check before any of them
decrements, because each check is followed by an await, so the shop sells
more mugs than it had and the stock ends below zero. In `with-lock` mode the
check and the decrement sit inside `async with lock:` (one asyncio.Lock for
the shop): the other buyers wait for the lock (`lock-wait`), and each one
that gets it checks the stock as it really is. A reader should see the
no-lock run oversell by (buyers - stock), and the locked run sell exactly
`stock` mugs, on a single thread either way.

The step mode (steps.py and task_sandbox.py) lets the reader be the event
loop's scheduler for two buyers and one mug.
"""
from __future__ import annotations

import asyncio

from demos.base import StepMode
from demos.library.last_mug.task_sandbox import ACTIONS as STEP_ACTIONS
from demos.library.last_mug.step_text import STEP_TEXT
from demos.params import ChoiceParam, IntParam

slug = "last-mug"
title = "The last mug: a check, an await, a decrement"
concept = ("Tasks on one thread can still race: a check followed by an await goes stale before the decrement, "
           "so two buyers get the last mug unless a lock spans check, await and decrement.")
placement = "loop"  # a few awaits of asyncio.sleep(0): bounded, safe on the web loop
time_limit_s = 20.0
lanes = "buyer task"
waits = "asyncio.sleep(0): a bare await that only hands the loop to the other tasks"
lane_states = frozenset({"queued", "running", "waiting", "lock-wait", "done"})
headline = ("sold", "stock_left", "oversold")
summary_fields = {
    "mode": ("Mode", ""), "buyers": ("Buyers", ""), "stock": ("Mugs in stock at first", ""),
    "sold": ("Mugs sold", ""), "stock_left": ("Stock at the end", ""), "oversold": ("Sold without a mug", ""),
    "lock_waits": ("Buyers that waited for the lock", ""),
}
MODES = ("no-lock", "with-lock")
params = (
    ChoiceParam("mode", "no-lock", MODES, label="Mode",
                help="no-lock: check, await, decrement; with-lock: the same inside async with lock."),
    IntParam("buyers", 4, 2, 50, label="Buyers", help="How many buyer tasks run at once."),
    IntParam("stock", 1, 1, 20, label="Mugs in stock"),
)
smoke_params = {"buyers": 2, "stock": 1}
step_mode = StepMode(
    consumer="demos.library.last_mug.step_consumer.StepConsumer",
    scenarios=tuple(STEP_ACTIONS),
    label="Step two asyncio tasks that buy the last mug",
    fallback=("Step mode: choose which of two real asyncio tasks the event loop resumes next, and try to sell "
              "the last mug twice."),
    text=STEP_TEXT,
)
# "Edit and run" opens this program: the idea in a few lines of standard-library Python.
starting_program = '''\
import asyncio

stock = 1
sold_to = []


async def buy(name):
    global stock
    if stock > 0:               # check
        await asyncio.sleep(0)  # the payment: the other task runs here
        stock -= 1              # decrement, on a check that is now stale
        sold_to.append(name)


async def main():
    await asyncio.gather(buy("ana"), buy("ben"))
    print(f"sold to {sold_to}, stock = {stock}")


asyncio.run(main())
# Try: share one asyncio.Lock and hold it from the check to the decrement.
'''


def _count(number: int, noun: str, nouns: str | None = None) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {nouns or noun + 's'}"


async def run(params, emit):
    """Let the buyers race for the stock; return how many mugs were sold against how many there were."""
    locked = params["mode"] == "with-lock"
    buyers, stock_at_first = params["buyers"], params["stock"]
    shop = {"stock": stock_at_first}
    lock = asyncio.Lock()
    sold = 0
    lock_waits = 0
    passed_before_first_take = 0  # checks that saw stock before any buyer had decremented
    emit("lanes", count=buyers, labels=[f"buyer {lane + 1}" for lane in range(buyers)])
    emit("counter", name="stock", value=stock_at_first)
    for lane in range(buyers):
        emit("state", lane=lane, state="queued", label="created")

    async def check_pay_take(lane: int) -> bool:
        nonlocal sold, passed_before_first_take
        emit("state", lane=lane, state="running", label=f"check: stock is {shop['stock']}")
        if shop["stock"] <= 0:
            return False
        if sold == 0:
            passed_before_first_take += 1
        emit("state", lane=lane, state="waiting", label="await payment")
        await asyncio.sleep(0)  # the other buyers run here
        shop["stock"] -= 1
        sold += 1
        emit("state", lane=lane, state="running", label=f"took a mug: stock {shop['stock']}")
        emit("counter", name="stock", value=shop["stock"])
        return True

    async def buyer(lane: int) -> None:
        nonlocal lock_waits
        if locked:
            if lock.locked():
                lock_waits += 1
                emit("state", lane=lane, state="lock-wait", label="waiting for the lock")
            async with lock:
                got = await check_pay_take(lane)
        else:
            got = await check_pay_take(lane)
        emit("state", lane=lane, state="done", label="got a mug" if got else "sold out")

    async with asyncio.TaskGroup() as group:
        for lane in range(buyers):
            group.create_task(buyer(lane))

    oversold = max(0, sold - stock_at_first)
    if oversold:
        text = (f"{_count(buyers, 'buyer')} on one thread bought {_count(sold, 'mug')} from a stock of "
                f"{stock_at_first}: the stock ended at {shop['stock']}. {_count(passed_before_first_take, 'buyer')} passed "
                f"the check before the first decrement, because an await sat between each check and its decrement.")
    else:
        how = ("with the check and the decrement under one asyncio.Lock" if locked
               else "with no buyer's check overtaken by another's decrement")
        text = (f"{_count(buyers, 'buyer')} bought {_count(sold, 'mug')} from a stock of {stock_at_first}, "
                f"{how}: the stock ended at {shop['stock']}, never below zero.")
        if locked and lock_waits:
            text += f" {_count(lock_waits, 'buyer')} waited for the lock and then checked the stock as it was."
    return {"text": text, "mode": params["mode"], "buyers": buyers, "stock": stock_at_first, "sold": sold,
            "stock_left": shop["stock"], "oversold": oversold, "lock_waits": lock_waits}
