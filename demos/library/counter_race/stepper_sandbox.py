"""Step mode's sandbox: two real transactions on one counter row, one statement per command.

    STEPPER_CONNINFO=... python stepper_sandbox.py --session ID --scenario S --table T --row-id N

The reader is the scheduler. Each transaction (T1, T2) owns a psycopg
connection and a thread that runs its statements, so a statement that waits
for the other transaction's row lock waits here, in this process, and never on
the web server's event loop. A third, autocommit connection watches the other
two: it notices a statement stuck on a lock (pg_stat_activity says it waits
for a `Lock`) and reads the committed counter after each step.

JSON lines on stdin: {"tx": "T1", "action": "read"} or {"quit": true}.
JSON lines on stdout: {"ready": true, "counter": N} once, then per command
either {"tx", "action", "sql", "status": "blocked" | "done" | "error",
"result", "counter_committed"} (a statement that waits reports "blocked"
first and "done" when it gets the row) or {"error": code, "message", "tx",
"action"} for a step that is out of order. End of stdin means quit.

The level's goal (make an increment vanish) is judged here, from the real
row: after each statement that ends, if the committed counter is lower than
its starting value plus the transactions that committed, one line
{"goal": "reached", "evidence": {"start", "counter", "committed"}} goes out;
if both transactions end without that, {"goal": "missed", "evidence": ...}.
Each is said at most once per session, after the step line that decided it.

Like the other sandboxes it imports nothing from the project (only psycopg),
so it starts fast; the conninfo comes through the environment, keeping the
password out of `ps`.
"""
from __future__ import annotations

import argparse
import ctypes
import json
import os
import queue
import re
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import psycopg

APPLICATION_NAME = "coursesite step-mode"
PR_SET_PDEATHSIG = 1
# How long a statement runs before the watcher asks PostgreSQL whether it waits for a lock.
BLOCK_CHECK_S = 0.03
# How long an unblocked statement waits for its lock holder's own answer to go out first.
HOLDER_REPORT_WAIT_S = 2.0
# Backstops in case this process is frozen rather than killed: PostgreSQL ends the sessions itself.
SERVER_TIMEOUTS = "-c idle_in_transaction_session_timeout=600000 -c statement_timeout=600000"

# Each scenario's steps, in the only order a transaction may take them.
ACTIONS: dict[str, tuple[str, ...]] = {
    "read-modify-write": ("begin", "read", "write", "commit"),
    "select-for-update": ("begin", "read", "write", "commit"),
    "atomic-update": ("begin", "update", "commit"),
}
STATEMENTS: dict[str, dict[str, str]] = {
    "read-modify-write": {
        "read": "SELECT n FROM {table} WHERE id = %s",
        "write": "UPDATE {table} SET n = %s WHERE id = %s",
    },
    "select-for-update": {
        "read": "SELECT n FROM {table} WHERE id = %s FOR UPDATE",
        "write": "UPDATE {table} SET n = %s WHERE id = %s",
    },
    "atomic-update": {
        "update": "UPDATE {table} SET n = n + 1 WHERE id = %s RETURNING n",
    },
}
BEGIN = "BEGIN ISOLATION LEVEL READ COMMITTED"
COMMIT = "COMMIT"
TRANSACTIONS = ("T1", "T2")


@dataclass(eq=False)
class PendingStatement:
    """The step a transaction is running, from the moment it is queued until it is reported."""

    action: str
    started: float  # time.monotonic() when the step was queued
    sql: str = ""  # the statement as sent, once the transaction's thread has built it
    reported_blocked: bool = False
    waiting_for: list[str] = field(default_factory=list)  # the lock holders named when it was reported blocked


class Transaction:
    """One transaction: its connection, its command queue, the thread that runs it."""

    def __init__(self, name: str, conninfo: str, stepper: Stepper) -> None:
        self.name = name
        self.stepper = stepper
        self.connection = psycopg.connect(
            conninfo, autocommit=True, application_name=APPLICATION_NAME,
            options=SERVER_TIMEOUTS, cursor_factory=psycopg.ClientCursor,
        )
        self.backend_pid = self.connection.info.backend_pid
        self.commands: queue.Queue[str | None] = queue.Queue()
        self.done_steps = 0  # index into ACTIONS[scenario] of the next allowed step
        self.failed = False
        self.committed = False  # its COMMIT returned: its increment is in the row
        self.value_read: int | None = None
        # Set while a statement runs; guarded by `lock`.
        self.pending: PendingStatement | None = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._work, name=f"stepper-{name}", daemon=True)
        self.thread.start()

    @property
    def finished(self) -> bool:
        return self.failed or self.done_steps >= len(ACTIONS[self.stepper.scenario])

    @property
    def busy(self) -> bool:
        with self.lock:
            return self.pending is not None

    def _work(self) -> None:
        while True:
            action = self.commands.get()
            if action is None:
                return
            self.stepper.run_step(self, action)


def _first_int(row: tuple[Any, ...] | None) -> int:
    """The first column, as an int, of a row the statement always returns (the row lives as long as the session)."""
    assert row is not None
    return int(row[0])


class Stepper:
    """Validates the reader's steps and runs them on the two transactions."""

    def __init__(self, *, conninfo: str, scenario: str, table: str, row_id: int) -> None:
        self.scenario = scenario
        self.table = table
        self.row_id = row_id
        self.output_lock = threading.Lock()
        self.goal_lock = threading.Lock()
        self.goal_said = False
        self.start_counter = 0  # set by main() from the row before the first step
        self.watcher_connection = psycopg.connect(
            conninfo, autocommit=True, application_name=APPLICATION_NAME, options=SERVER_TIMEOUTS,
        )
        self.watcher_lock = threading.Lock()
        self.transactions = {name: Transaction(name, conninfo, self) for name in TRANSACTIONS}
        self.stopping = threading.Event()
        self.watcher = threading.Thread(target=self._watch_for_locks, name="stepper-watcher", daemon=True)
        self.watcher.start()

    # --- output -----------------------------------------------------------------------------------

    def say(self, message: dict) -> None:
        with self.output_lock:
            sys.stdout.write(json.dumps(message) + "\n")
            sys.stdout.flush()

    def committed_counter(self) -> int:
        with self.watcher_lock:
            row = self.watcher_connection.execute(f"SELECT n FROM {self.table} WHERE id = %s", [self.row_id]).fetchone()
        return int(row[0]) if row else 0

    # --- commands ---------------------------------------------------------------------------------

    def command(self, tx_name: str, action: str) -> None:
        """Queue a step, or explain why it cannot run now."""
        transaction = self.transactions.get(tx_name)
        refuse = {"tx": tx_name, "action": action}
        if transaction is None:
            self.say({"error": "bad_message", "message": "`tx` must be T1 or T2.", **refuse})
            return
        steps = ACTIONS[self.scenario]
        if transaction.busy:
            message = f"{tx_name} is still waiting for its last statement; it can take no other step until that one finishes."
            self.say({"error": "busy", "message": message, **refuse})
            return
        if transaction.finished:
            ended = "failed and rolled back" if transaction.failed else "committed"
            self.say({"error": "invalid_step", "message": f"{tx_name} has already {ended}; press Reset to start again.",
                      **refuse})
            return
        expected = steps[transaction.done_steps]
        if action != expected:
            if action not in steps:
                message = f"{action!r} is not a step of {self.scenario}; its steps are {', '.join(steps)}."
            elif action == "write" and expected == "read":
                message = f"{tx_name} has to read the counter before it can write it back."
            else:
                message = f"{tx_name} cannot {action} now: its next step is {expected}."
            self.say({"error": "invalid_step", "message": message, **refuse})
            return
        with transaction.lock:
            transaction.pending = PendingStatement(action=action, started=time.monotonic())
        transaction.commands.put(action)

    def run_step(self, transaction: Transaction, action: str) -> None:
        """Run one statement on `transaction`'s thread and report it."""
        params: list[int]
        if action == "begin":
            query, params = BEGIN, []
        elif action == "commit":
            query, params = COMMIT, []
        elif action == "write":
            value_read = transaction.value_read
            assert value_read is not None  # the scenario's read step always comes before its write
            query, params = STATEMENTS[self.scenario][action].format(table=self.table), [value_read + 1, self.row_id]
        else:
            query, params = STATEMENTS[self.scenario][action].format(table=self.table), [self.row_id]
        cursor = transaction.connection.cursor()
        assert isinstance(cursor, psycopg.ClientCursor)  # the connection's cursor_factory; it can mogrify
        sql = cursor.mogrify(query, params) if params else query
        with transaction.lock:
            pending = transaction.pending
            assert pending is not None  # command() set it before queueing this step
            pending.sql = sql
        status = "done"
        result: dict[str, int | str] = {}
        try:
            cursor.execute(query, params or None)
            if action == "read":
                transaction.value_read = _first_int(cursor.fetchone())
                result = {"n": transaction.value_read}
            elif action == "write":
                result = {"n": params[0], "rows": cursor.rowcount}  # params[0] is the value written
            elif action == "update":
                result = {"n": _first_int(cursor.fetchone()), "rows": cursor.rowcount}
            transaction.done_steps += 1
            transaction.committed = action == "commit"
        except psycopg.Error as error:
            status = "error"
            result = {"message": (error.diag.message_primary or str(error)).strip()}
            transaction.failed = True
            try:
                transaction.connection.execute("ROLLBACK")
            except psycopg.Error:
                pass
        finally:
            cursor.close()
        self._let_holders_report_first(transaction)
        counter = self.committed_counter()
        with transaction.lock:
            transaction.pending = None
            self.say({
                "tx": transaction.name, "action": action, "sql": sql, "status": status,
                "result": result, "counter_committed": counter,
            })
        self._judge_goal()

    def _judge_goal(self) -> None:
        """Say whether an increment vanished, from the row itself, once the answer is known.

        The commits are counted before the row is read, so every increment
        they made is already in what the read sees: a row lower than the start
        plus the commits has really lost one. A transaction whose answer has
        not gone out yet is not counted (its own thread judges again after
        it), so the goal line never comes before the step that decided it.
        """
        with self.goal_lock:
            if self.goal_said:
                return
            settled = [transaction for transaction in self.transactions.values() if not transaction.busy]
            committed = sum(transaction.committed for transaction in settled)
            counter = self.committed_counter()
            evidence = {"start": self.start_counter, "counter": counter, "committed": committed}
            if counter < self.start_counter + committed:
                self.goal_said = True
                self.say({"goal": "reached", "evidence": evidence})
            elif len(settled) == len(self.transactions) and all(transaction.finished for transaction in settled):
                self.goal_said = True
                self.say({"goal": "missed", "evidence": evidence})

    def _let_holders_report_first(self, transaction: Transaction) -> None:
        """A statement that waited ran because its lock holder committed: report that commit first.

        Both threads wake at nearly the same moment; without this the reader
        could see T2's answer before the T1 commit that released it.
        """
        with transaction.lock:
            pending = transaction.pending
            assert pending is not None  # cleared only after this returns
            holders = pending.waiting_for
        deadline = time.monotonic() + HOLDER_REPORT_WAIT_S
        for name in holders:
            holder = self.transactions.get(name)
            while holder is not None and holder.busy and time.monotonic() < deadline:
                time.sleep(0.002)

    # --- the lock watcher -------------------------------------------------------------------------

    def _watch_for_locks(self) -> None:
        """Report a statement as blocked once PostgreSQL says it waits for a lock."""
        pids = {transaction.backend_pid: name for name, transaction in self.transactions.items()}
        while not self.stopping.wait(BLOCK_CHECK_S):
            for transaction in self.transactions.values():
                with transaction.lock:
                    pending = transaction.pending
                    if pending is None or pending.reported_blocked or time.monotonic() - pending.started < BLOCK_CHECK_S:
                        continue  # nothing running, already reported, or too soon to ask
                try:
                    with self.watcher_lock:
                        row = self.watcher_connection.execute(
                            "SELECT wait_event_type, pg_blocking_pids(pid) FROM pg_stat_activity WHERE pid = %s",
                            [transaction.backend_pid],
                        ).fetchone()
                except psycopg.Error:
                    continue
                if not row or row[0] != "Lock":
                    continue
                holders = [pids.get(pid, f"backend {pid}") for pid in row[1] or []]
                with transaction.lock:
                    if transaction.pending is not pending:
                        continue  # it finished while we asked
                    pending.reported_blocked = True
                    pending.waiting_for = holders
                    self.say({
                        "tx": transaction.name, "action": pending.action, "sql": pending.sql, "status": "blocked",
                        "result": {"waiting_for": holders}, "counter_committed": None,
                    })

    # --- shutdown ---------------------------------------------------------------------------------

    def stop(self) -> None:
        """Cancel any waiting statement, roll back, close all three connections."""
        self.stopping.set()
        for transaction in self.transactions.values():
            if transaction.busy:
                try:
                    transaction.connection.cancel_safe(timeout=2)
                except Exception:  # noqa: BLE001  (closing anyway)
                    pass
            transaction.commands.put(None)
        for transaction in self.transactions.values():
            transaction.thread.join(timeout=3)
            transaction.connection.close()
        self.watcher.join(timeout=1)
        self.watcher_connection.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--session", required=True, help="The step session's id; only to find this process.")
    parser.add_argument("--scenario", required=True, choices=sorted(ACTIONS))
    parser.add_argument("--table", required=True)
    parser.add_argument("--row-id", type=int, required=True)
    args = parser.parse_args()
    if not re.fullmatch(r"[a-z_][a-z0-9_]*", args.table):
        parser.error("--table must be a plain lower-case table name")
    if sys.platform.startswith("linux"):
        # If the web server dies, take this process (and its connections) with it.
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    stepper = Stepper(conninfo=os.environ["STEPPER_CONNINFO"], scenario=args.scenario, table=args.table, row_id=args.row_id)
    try:
        stepper.start_counter = stepper.committed_counter()
        stepper.say({"ready": True, "counter": stepper.start_counter})
        for line in sys.stdin:
            try:
                command = json.loads(line)
            except ValueError:
                continue  # only the consumer writes here; a bad line is a bug there, not a reason to die
            if not isinstance(command, dict) or command.get("quit"):
                break
            stepper.command(str(command.get("tx")), str(command.get("action")))
    finally:
        stepper.stop()


if __name__ == "__main__":
    main()
