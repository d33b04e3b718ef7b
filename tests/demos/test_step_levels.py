"""Step-mode levels on real PostgreSQL: each goal is judged from the database, and "step back" replays.

Everything goes through the real Daphne, real sandbox subprocesses and their
own connections. A goal counts as reached only when the sandbox says so from
what it read off the row or from the server's own error; the tests check that
it says so at the moment the schedule makes it true, says "missed" when both
transactions end without it (the fixed levels whatever the order), and that a
replayed schedule gives back the same answers as the first time.
"""
from __future__ import annotations

import re

import pytest

from tests.demos.helpers import STEP_PATH, demo_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

DEADLOCK_PATH = "/ws/steps/deadlock/"
DEADLOCK_DETECTED = "40P01"


class Stepper:
    """One open session: presses statements and keeps every message that came back, in order."""

    def __init__(self, communicator, opened: dict) -> None:
        self.communicator = communicator
        self.session = opened["session"]
        self.messages: list[dict] = []
        self.waiting: set[str] = set()  # transactions whose statement was answered "blocked" and is still out

    @classmethod
    async def open(cls, communicator, scenario: str, replay: list[list[str]] | None = None) -> Stepper:
        request = {"type": "open", "scenario": scenario, "ref": "level"}
        if replay is not None:
            request["replay"] = replay
        await communicator.send_json_to(request)
        opened = await communicator.receive_json_from(timeout=20)
        assert opened["type"] == "opened" and opened["ref"] == "level", opened
        assert opened["replay"] == (replay or [])
        return cls(communicator, opened)

    async def receive(self, timeout: float = 15) -> dict:
        message = await self.communicator.receive_json_from(timeout=timeout)
        self.messages.append(message)
        if message["type"] == "step":
            (self.waiting.add if message["status"] == "blocked" else self.waiting.discard)(message["tx"])
        return message

    async def until(self, wanted, timeout: float = 15) -> dict:
        """Receive until a message matches `wanted`; that message."""
        while True:
            message = await self.receive(timeout)
            if wanted(message):
                return message

    async def press(self, tx: str, action: str) -> dict:
        """Send one step, once `tx` is free as the reader's buttons would be; wait for its first answer."""
        if tx in self.waiting:
            await self.until(lambda message: tx not in self.waiting)
        await self.communicator.send_json_to({"type": "step", "session": self.session, "tx": tx, "action": action})
        answer = await self.until(lambda message: message["type"] in ("step", "error") and message.get("tx") == tx
                                  and message.get("action") == action)
        assert answer["type"] == "step" and answer["action"] == action, answer
        return answer

    async def press_all(self, schedule: list[tuple[str, str]]) -> None:
        for tx, action in schedule:
            await self.press(tx, action)

    def goals(self) -> list[dict]:
        return [message for message in self.messages if message["type"] == "goal"]

    async def close(self) -> None:
        await self.communicator.send_json_to({"type": "close", "session": self.session})
        await self.until(lambda message: message["type"] == "closed" and message["session"] == self.session)


def seen(message: dict) -> tuple:
    """What the reader sees of a step answer, with the session's own row ids masked (fresh rows differ)."""
    return (message["tx"], message["action"], message["status"], re.sub(r"id = \d+", "id = #", message["sql"]),
            message["result"], message["counter_committed"])


async def test_a_lost_increment_is_reached_only_when_the_row_falls_short_of_the_commits():
    async with demo_socket(STEP_PATH) as communicator:
        level = await Stepper.open(communicator, "read-modify-write")
        await level.press_all([("T1", "begin"), ("T2", "begin"), ("T1", "read"), ("T2", "read"),
                               ("T1", "write"), ("T1", "commit"), ("T2", "write")])
        assert level.goals() == [], "one commit and a row at 1: nothing has vanished yet"
        await level.press("T2", "commit")
        goal = await level.until(lambda message: message["type"] == "goal")
        assert goal == {"type": "goal", "session": level.session, "status": "reached",
                        "evidence": {"start": 0, "counter": 1, "committed": 2}}
        await level.close()
        # The same level with a schedule that reads after the commit: both end, the row is right, no goal.
        serial = await Stepper.open(communicator, "read-modify-write")
        await serial.press_all([("T1", "begin"), ("T1", "read"), ("T1", "write"), ("T1", "commit"),
                                ("T2", "begin"), ("T2", "read"), ("T2", "write")])
        assert serial.goals() == []
        await serial.press("T2", "commit")
        goal = await serial.until(lambda message: message["type"] == "goal")
        assert (goal["status"], goal["evidence"]) == ("missed", {"start": 0, "counter": 2, "committed": 2})


@pytest.mark.parametrize("scenario, schedule", [
    # The interleaving that loses an update without a lock: T2's locked read has to wait for T1's commit.
    ("select-for-update", [("T1", "begin"), ("T2", "begin"), ("T1", "read"), ("T2", "read"), ("T1", "write"),
                           ("T1", "commit"), ("T2", "write"), ("T2", "commit")]),
    ("atomic-update", [("T1", "begin"), ("T2", "begin"), ("T1", "update"), ("T2", "update"), ("T1", "commit"),
                       ("T2", "commit")]),
])
async def test_in_the_fixed_counter_levels_the_goal_is_missed_whatever_the_order(scenario, schedule):
    async with demo_socket(STEP_PATH) as communicator:
        level = await Stepper.open(communicator, scenario)
        await level.press_all(schedule)
        goal = await level.until(lambda message: message["type"] == "goal")
        assert (goal["status"], goal["evidence"]) == ("missed", {"start": 0, "counter": 2, "committed": 2})
        assert [message for message in level.messages if message["type"] == "goal"] == [goal]


async def test_the_deadlock_level_is_reached_by_postgresqls_own_error_and_a_replay_reaches_it_again():
    cycle = [["T1", "begin"], ["T2", "begin"], ["T1", "update-a"], ["T2", "update-b"], ["T1", "update-b"],
             ["T2", "update-a"]]
    async with demo_socket(DEADLOCK_PATH) as communicator:
        level = await Stepper.open(communicator, "opposite-order")
        await level.press_all([(tx, action) for tx, action in cycle])
        goal = await level.until(lambda message: message["type"] == "goal")
        assert goal["status"] == "reached"
        assert goal["evidence"]["sqlstate"] == DEADLOCK_DETECTED and goal["evidence"]["message"] == "deadlock detected"
        victim = goal["evidence"]["victim"]
        errors = [message for message in level.messages if message["type"] == "step" and message["status"] == "error"]
        assert [(error["tx"], error["result"]["sqlstate"]) for error in errors] == [(victim, DEADLOCK_DETECTED)]
        await level.close()
        # Stepping back from the next statement replays these six in a fresh session: PostgreSQL breaks the
        # same cycle again, and the level is reached again from its error.
        again = await Stepper.open(communicator, "opposite-order", replay=cycle)
        replayed = await again.until(lambda message: message["type"] == "replayed")
        assert (replayed["steps"], replayed["of"]) == (6, 6)
        goal = again.goals()[0] if again.goals() else await again.until(lambda message: message["type"] == "goal")
        assert goal["status"] == "reached" and goal["evidence"]["sqlstate"] == DEADLOCK_DETECTED


async def test_in_one_lock_order_the_deadlock_goal_is_missed_once_both_commit():
    async with demo_socket(DEADLOCK_PATH) as communicator:
        level = await Stepper.open(communicator, "same-order")
        await level.press_all([("T1", "begin"), ("T2", "begin"), ("T1", "update-a")])
        assert (await level.press("T2", "update-a"))["status"] == "blocked"
        await level.press_all([("T1", "update-b"), ("T1", "commit")])
        await level.press_all([("T2", "update-b"), ("T2", "commit")])
        goal = await level.until(lambda message: message["type"] == "goal")
        assert (goal["status"], goal["evidence"]) == ("missed", {"committed": 2})


async def test_step_back_restarts_and_replays_to_the_state_before_the_last_step():
    before_last = [["T1", "begin"], ["T2", "begin"], ["T1", "read"], ["T2", "read"], ["T1", "write"],
                   ["T2", "write"]]
    async with demo_socket(STEP_PATH) as communicator:
        first = await Stepper.open(communicator, "read-modify-write")
        await first.press_all([(tx, action) for tx, action in before_last])
        assert first.messages[-1]["status"] == "blocked", "T2's write waits for T1's row lock"
        state_before = [seen(message) for message in first.messages]
        await first.press("T1", "commit")  # the step to take back
        await first.until(lambda message: message.get("tx") == "T2" and message["status"] == "done")
        await first.close()
        back = await Stepper.open(communicator, "read-modify-write", replay=before_last)
        assert back.session != first.session, "a fresh session, with rows of its own"
        replayed = await back.until(lambda message: message["type"] == "replayed")
        assert (replayed["steps"], replayed["of"]) == (6, 6)
        assert [seen(message) for message in back.messages[:-1]] == state_before
        # T2 is still waiting for T1, as it was before the COMMIT that was taken back; the reader goes on from here.
        assert await communicator.receive_nothing(timeout=0.3)
        commit = await back.press("T1", "commit")
        assert commit["counter_committed"] == 1
        await back.until(lambda message: message.get("tx") == "T2" and message["status"] == "done")
        # A replayed step the sandbox refuses ends the replay there, and `replayed` says how far it got.
        await back.close()
        wrong = await Stepper.open(communicator, "read-modify-write", replay=[["T1", "begin"], ["T1", "write"]])
        refused = await wrong.until(lambda message: message["type"] == "error")
        assert (refused["code"], refused["tx"], refused["action"]) == ("invalid_step", "T1", "write")
        replayed = await wrong.until(lambda message: message["type"] == "replayed")
        assert (replayed["steps"], replayed["of"]) == (1, 2)
        await communicator.send_json_to({"type": "open", "scenario": "read-modify-write", "replay": [["T3", "begin"]]})
        assert (await communicator.receive_json_from(timeout=10))["code"] == "bad_message"


LAST_MUG_PATH = "/ws/steps/last-mug/"


def lanes(message: dict) -> dict[str, str]:
    """Each task's lane state as the sandbox's event loop reported it with this answer."""
    return {name: task["state"] for name, task in message["result"]["tasks"].items()}


async def test_the_last_mug_is_sold_twice_only_when_both_tasks_check_before_either_resumes():
    both_check = [["T1", "start"], ["T2", "start"]]
    async with demo_socket(LAST_MUG_PATH) as communicator:
        level = await Stepper.open(communicator, "no-lock")
        first = await level.press("T1", "start")
        assert (first["status"], first["result"]["seen"], first["counter_committed"]) == ("done", 1, 1)
        assert lanes(first) == {"T1": "waiting", "T2": "queued"}, "T2 is a real task, ready, but not resumed"
        assert first["result"]["code"].startswith("await asyncio.sleep(0)")
        second = await level.press("T2", "start")
        assert second["result"]["seen"] == 1 and lanes(second) == {"T1": "waiting", "T2": "waiting"}
        resumed = await level.press("T1", "resume")
        assert (resumed["result"]["outcome"], resumed["counter_committed"]) == ("got the mug", 0)
        assert level.goals() == [], "one mug sold, stock 0: nothing oversold yet"
        await level.press("T2", "resume")
        goal = await level.until(lambda message: message["type"] == "goal")
        assert goal == {"type": "goal", "session": level.session, "status": "reached",
                        "evidence": {"start": 1, "stock": -1, "got": 2, "buyers": "T1 and T2"}}
        await level.close()
        # Resuming T1 to its end before T2 starts: T2's check reads 0 and it returns at once, sold out.
        serial = await Stepper.open(communicator, "no-lock")
        await serial.press_all([("T1", "start"), ("T1", "resume")])
        late = await serial.press("T2", "start")
        assert (late["result"]["seen"], late["result"]["finished"], late["result"]["outcome"]) == (0, True, "sold out")
        goal = await serial.until(lambda message: message["type"] == "goal")
        assert (goal["status"], goal["evidence"]["stock"], goal["evidence"]["got"]) == ("missed", 0, 1)
        await serial.close()
        # Step back to the two checks: a fresh loop resumes them again and gives the same answers.
        again = await Stepper.open(communicator, "no-lock", replay=both_check)
        replayed = await again.until(lambda message: message["type"] == "replayed")
        assert (replayed["steps"], replayed["of"]) == (2, 2)
        assert [seen(message) for message in again.messages[:2]] == [seen(first), seen(second)]
        await again.press_all([("T2", "resume"), ("T1", "resume")])
        goal = await again.until(lambda message: message["type"] == "goal")
        assert (goal["status"], goal["evidence"]["stock"]) == ("reached", -1)


@pytest.mark.parametrize("first, second", [("T1", "T2"), ("T2", "T1")])
async def test_with_an_asyncio_lock_the_second_buyer_waits_for_it_and_the_mug_is_sold_once(first, second):
    async with demo_socket(LAST_MUG_PATH) as communicator:
        level = await Stepper.open(communicator, "with-lock")
        await level.press(first, "start")
        waits = await level.press(second, "start")
        assert (waits["status"], waits["result"]["waiting_for"]) == ("blocked", [first])
        assert lanes(waits) == {first: "waiting", second: "lock-wait"}
        assert waits["result"]["code"] == "async with lock:"
        await level.press(first, "resume")
        # Releasing the lock hands it to the waiter, whose step the reader already sent: it checks, finds 0.
        late = await level.until(lambda message: message["type"] == "step" and message["tx"] == second
                                 and message["status"] == "done")
        assert (late["action"], late["result"]["seen"], late["result"]["outcome"]) == ("start", 0, "sold out")
        goal = await level.until(lambda message: message["type"] == "goal")
        assert goal["status"] == "missed"
        assert goal["evidence"] == {"start": 1, "stock": 0, "got": 1, "buyers": first, "sold_out": second,
                                    "lock_waited": second}
