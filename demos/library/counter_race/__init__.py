"""The counter race: lost updates in a real PostgreSQL row, and three fixes.

`workers` clients, each a thread with its own database connection, add 1 to
the same counter row `increments` times each, pausing `window_ms` between
reading the row and writing it. In `read-modify-write` mode a client reads
`n` into Python and writes back `n + 1`, so any write that lands inside its
pause is overwritten: the reader should see the counter fall behind the
expected count and the summary report the increments that were lost. The
other modes cannot lose one: `atomic-update` lets PostgreSQL do the addition
(`UPDATE ... SET n = n + 1`), `select-for-update` locks the row for the whole
read-pause-write (clients queue, and the lanes show them blocked),
`optimistic` writes only if the row's version is still the one it read and
retries otherwise (the retries are counted). Their price shows as throughput.

Every trial uses its own row, deleted when the run ends, and every connection
the demo opens is tagged with APPLICATION_NAME and closed before `run` returns.
"""
from __future__ import annotations

import itertools
import math
import statistics
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from collections.abc import Callable

from django.db import connection, connections, transaction
from django.db.models import F

from demos.params import ChoiceParam, IntParam, ParamError
from demos.base import StepMode
from demos.library.counter_race.step_text import STEP_TEXT
from demos.library.counter_race.stepper_sandbox import ACTIONS

slug = "counter-race"
title = "The counter race"
concept = ("Read, add one in Python, write back: concurrent clients overwrite each other's increments unless the "
           "database does the adding, locks the row, or rejects stale writes.")
placement = "worker"  # threads, real connections, blocking sleeps
time_limit_s = 90.0
lanes = "client"
headline = ("lost", "final", "increments_per_s")
summary_fields = {
    "mode": ("Mode", ""), "expected": ("Increments performed", ""), "final": ("Counter at the end", ""),
    "lost": ("Increments lost", ""), "elapsed_ms": ("Time taken", "ms"), "increments_per_s": ("Increments per second", ""),
    "lock_wait_ms": ("Time waiting for the row lock", "ms"), "lock_wait_ms_by_client": ("Row-lock wait per client", "ms"),
    "retries": ("Optimistic retries", ""), "connections": ("Database connections", ""), "trials": ("Trials", ""),
    "finals": ("Counter at the end of each trial", ""), "final_min": ("Lowest final counter", ""),
    "final_max": ("Highest final counter", ""), "final_mean": ("Mean final counter", ""),
}
# A client thread holds the CPU only for moments between statements: its round trips to PostgreSQL and its
# pause are `blocked` (in a system call, no CPU); waiting for the row lock is `lock-wait`.
lane_states = frozenset({"blocked", "lock-wait", "done", "failed"})
waits = "PostgreSQL (plus a time.sleep pause between a read and its write)"
step_mode = StepMode(
    consumer="demos.library.counter_race.step_consumer.StepConsumer",
    scenarios=tuple(ACTIONS),
    label="Step through two transactions",
    fallback="Step mode: run two real PostgreSQL transactions one statement at a time and watch an update get lost.",
    text=STEP_TEXT,
)

MODES = ("read-modify-write", "atomic-update", "select-for-update", "optimistic")
# Modes in which one increment (with its pause) excludes every other client's.
SERIALISED_MODES = ("select-for-update", "optimistic")

params = (
    ChoiceParam("mode", "read-modify-write", MODES, label="Mode",
                help="read-modify-write adds 1 in Python; atomic-update adds it in SQL; select-for-update locks the row; "
                     "optimistic checks a version column and retries."),
    IntParam("workers", 8, 1, 32, label="Clients", help="Concurrent clients, each with its own database connection."),
    IntParam("increments", 100, 1, 1_000, label="Increments per client"),
    IntParam("window_ms", 1, 0, 50, label="Read-write gap (ms)",
             help="How long each client pauses between reading the counter and writing it."),
    IntParam("trials", 1, 1, 10, label="Trials", help="Run the same configuration this many times, each on a fresh row."),
)
# Small enough for the test suite's run over every demo.
smoke_params = {"workers": 2, "increments": 5}

# Shows in pg_stat_activity.application_name, so the demo's connections can be counted.
APPLICATION_NAME = "coursesite counter-race"
POLL_INTERVAL_S = 0.04
# The monitor's interval doubles after this many polls, so long runs plot fewer points.
POLLS_PER_INTERVAL = 150
# Lane state events per run, across all clients and trials; beyond it, attempts are sampled.
STATE_EVENT_BUDGET = 4_000
# Rough cost of one increment beyond its pause, measured on a busy 2-core machine; used only to
# refuse runs that would outlast the time limit. Optimistic clients also pay for their retries.
OVERHEAD_MS = {"read-modify-write": 1.0, "atomic-update": 1.0, "select-for-update": 4.0, "optimistic": 8.0}
RUN_BUDGET_MS = 40_000



def counters():
    """The demo's counter rows. Imported here, not at the top: this package is a
    Django app, and its models cannot load while Django is still importing apps."""
    from demos.library.counter_race.models import RaceCounter

    return RaceCounter.objects

def estimated_ms(values: dict[str, Any]) -> float:
    """About how long a run with these values takes on a busy machine."""
    mode, workers, increments = values["mode"], values["workers"], values["increments"]
    if mode in SERIALISED_MODES:
        # The clients take turns, so their pauses add up instead of overlapping.
        per_trial = workers * increments * (values["window_ms"] + OVERHEAD_MS[mode])
    else:
        # Pauses overlap, but the clients still share the CPU.
        per_trial = max(increments * (values["window_ms"] + OVERHEAD_MS[mode]), workers * increments * OVERHEAD_MS[mode])
    return values["trials"] * per_trial


def check_params(values: dict[str, Any]) -> None:
    """Refuse configurations that could not finish well inside the time limit."""
    estimate = estimated_ms(values)
    if estimate > RUN_BUDGET_MS:
        turns = " (in this mode the clients take turns)" if values["mode"] in SERIALISED_MODES else ""
        raise ParamError(f"this would take about {estimate / 1000:.0f} s{turns}; "
                         f"keep it under {RUN_BUDGET_MS // 1000} s with fewer clients, increments or trials, or a shorter gap")


class _Stopped(Exception):
    """Another thread of the run failed or the run was cancelled: stop incrementing."""


@dataclass
class _Client:
    """One client's lane and what it measured in one trial."""

    index: int
    emit: Any
    every: int  # draw every `every`-th attempt on the lane
    budget: int  # state events this lane may spend before the rate halves
    increments_done: int = 0
    retries: int = 0
    lock_wait_s: float = 0.0
    finished_at: float = 0.0
    backend_pid: int | None = None
    _attempt: int = 0
    _drawing: bool = False
    _spent: int = 0
    _extra: int = 0  # the next allowance once the budget is spent

    def begin_attempt(self) -> None:
        self._drawing = self._attempt % self.every == 0
        self._attempt += 1

    def show(self, state: str, label: str) -> None:
        if not self._drawing:
            return
        self.emit("state", lane=self.index, state=state, label=label)
        self._spent += 1
        if self._spent >= self.budget:
            # More attempts than planned (optimistic retries): halve the drawing rate and allow
            # an eighth, a sixteenth, ... more, so a lane spends about 1.25 × its budget at most.
            self._extra = self._extra // 2 if self._extra else self.budget // 8
            self.every *= 2
            self.budget += max(1, self._extra)


@dataclass
class _Trial:
    """What the threads of one trial share."""

    counter_id: int
    mode: str
    window_s: float
    increments: int
    clients: list[_Client]
    emit: Any
    capture_sql: bool
    start: threading.Barrier  # every thread waits here until all connections are open
    stop: threading.Event = field(default_factory=threading.Event)
    clients_done: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    started_at: float = 0.0
    final: int | None = None
    conflict_logged: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, error: BaseException) -> None:
        with self.lock:
            self.errors.append(error)
        self.stop.set()
        self.start.abort()

    def increments_done(self) -> int:
        return sum(client.increments_done for client in self.clients)


# --- one increment, four ways -------------------------------------------------------------------


def _pause(window_s: float) -> None:
    if window_s > 0:
        time.sleep(window_s)


def _read_modify_write(trial: _Trial, client: _Client, sql: _SqlCapture | None) -> None:
    client.begin_attempt()
    client.show("blocked", "read: SELECT round trip")
    value = counters().filter(pk=trial.counter_id).values_list("n", flat=True)[0]
    client.show("blocked", "gap: time.sleep")
    _pause(trial.window_s)
    client.show("blocked", "write: UPDATE round trip")
    counters().filter(pk=trial.counter_id).update(n=value + 1)  # may overwrite a newer value


def _atomic_update(trial: _Trial, client: _Client, sql: _SqlCapture | None) -> None:
    client.begin_attempt()
    # Same pause as the other modes, so throughput compares like with like; nothing was read before it.
    client.show("blocked", "gap: time.sleep")
    _pause(trial.window_s)
    client.show("blocked", "update: UPDATE round trip")
    counters().filter(pk=trial.counter_id).update(n=F("n") + 1)


def _select_for_update(trial: _Trial, client: _Client, sql: _SqlCapture | None) -> None:
    client.begin_attempt()
    client.show("lock-wait", "waiting for the row lock")
    with transaction.atomic():
        if sql is not None:
            sql.note("BEGIN")
        asked = time.perf_counter()
        value = counters().select_for_update().filter(pk=trial.counter_id).values_list("n", flat=True)[0]
        client.lock_wait_s += time.perf_counter() - asked
        client.show("blocked", "gap: time.sleep, holding the lock")
        _pause(trial.window_s)
        client.show("blocked", "write: UPDATE round trip")
        counters().filter(pk=trial.counter_id).update(n=value + 1)
    if sql is not None:
        sql.note("COMMIT")


def _optimistic(trial: _Trial, client: _Client, sql: _SqlCapture | None) -> None:
    while not trial.stop.is_set():
        client.begin_attempt()
        client.show("blocked", "read: SELECT round trip")
        value, version = counters().filter(pk=trial.counter_id).values_list("n", "version")[0]
        client.show("blocked", "gap: time.sleep")
        _pause(trial.window_s)
        client.show("blocked", "write: UPDATE round trip")
        written = counters().filter(pk=trial.counter_id, version=version).update(
            n=value + 1, version=F("version") + 1
        )
        if written:
            return
        client.retries += 1
        client.show("failed", "conflict: retry")
        with trial.lock:  # check-then-set, so under the lock: only the first conflict is told
            first_conflict, trial.conflict_logged = not trial.conflict_logged, True
        if first_conflict:
            trial.emit("log", text=f"-- client {client.index + 1}: the UPDATE ... WHERE version = {version} matched no row "
                                   "(another client wrote first), so it reads again and retries")
    raise _Stopped()


INCREMENT: dict[str, Callable[[_Trial, _Client, _SqlCapture | None], None]] = {
    "read-modify-write": _read_modify_write,
    "atomic-update": _atomic_update,
    "select-for-update": _select_for_update,
    "optimistic": _optimistic,
}


class _SqlCapture:
    """An execute wrapper keeping the statements one increment sent, as PostgreSQL received them.

    Only the first statement of each shape is kept: an optimistic increment
    that had to retry sends the same pair again with other numbers.
    """

    def __init__(self) -> None:
        self.statements: list[str] = []
        self._shapes: set[str] = set()

    def note(self, statement: str) -> None:
        """Statements psycopg sends itself when Django opens and closes a transaction."""
        self.statements.append(statement)

    def __call__(self, execute, sql, params, many, context):
        result = execute(sql, params, many, context)
        if sql in self._shapes:
            return result
        self._shapes.add(sql)
        self.statements.append(context["connection"].ops.last_executed_query(context["cursor"], sql, params) or sql)
        return result


# --- threads --------------------------------------------------------------------------------------


def _open_tagged_connection() -> int:
    """Open this thread's connection, name it for pg_stat_activity, and return its backend pid."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('application_name', %s, false), pg_backend_pid()", [APPLICATION_NAME])
        return cursor.fetchone()[1]


def _client_thread(trial: _Trial, client: _Client) -> None:
    increment = INCREMENT[trial.mode]
    try:
        client.backend_pid = _open_tagged_connection()
        trial.start.wait()
        for done in range(trial.increments):
            if trial.stop.is_set():
                raise _Stopped()
            if done == 0 and trial.capture_sql and client.index == 0:
                capture = _SqlCapture()
                with connection.execute_wrapper(capture):
                    increment(trial, client, capture)
                trial.emit("log", text=f"-- {trial.mode}: one increment by client 1 sent")
                for statement in capture.statements:
                    trial.emit("log", text=statement)
            else:
                increment(trial, client, None)
            client.increments_done += 1
        client.finished_at = time.perf_counter()
        trial.emit("state", lane=client.index, state="done")
    except _Stopped:
        pass
    except BaseException as error:  # RunCancelled from emit included: the main thread re-raises it
        trial.fail(error)
    finally:
        connections.close_all()


def _read_counter(trial: _Trial) -> int:
    return counters().filter(pk=trial.counter_id).values_list("n", flat=True)[0]


def _monitor_thread(trial: _Trial) -> None:
    """Plot the counter against the increments the clients have made, until they are all done."""
    total = trial.increments * len(trial.clients)
    try:
        _open_tagged_connection()
        trial.start.wait()
        for poll in itertools.count():
            last = trial.clients_done.is_set()
            value, expected = _read_counter(trial), trial.increments_done()
            trial.emit("metric", name="counter", value=value)
            trial.emit("metric", name="expected", value=expected)
            trial.emit("counter", name="counter", value=value)
            trial.emit("progress", done=expected, total=total)
            if trial.mode == "select-for-update":
                waited_ms = sum(client.lock_wait_s for client in trial.clients) * 1000
                trial.emit("metric", name="lock_wait_ms", value=round(waited_ms, 1), unit="ms")
            if trial.mode == "optimistic":
                trial.emit("metric", name="retries", value=sum(client.retries for client in trial.clients))
            if last:
                trial.final = value
                return
            trial.clients_done.wait(POLL_INTERVAL_S * 2 ** (poll // POLLS_PER_INTERVAL))
            if trial.stop.is_set():
                return
    except BaseException as error:
        trial.fail(error)
    finally:
        connections.close_all()


def _with_own_connection(work: Callable[[], Any]) -> Any:
    """Run `work` in a short-lived thread whose connection is closed when it ends.

    The task's own thread keeps its connection for the engine; the demo's
    connections all end with the run.
    """
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            _open_tagged_connection()
            outcome["value"] = work()
        except BaseException as error:
            outcome["error"] = error
        finally:
            connections.close_all()

    thread = threading.Thread(target=target, name="counter-race-setup")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _run_trial(*, number: int, values: dict[str, Any], emit: Any) -> dict[str, Any]:
    workers, increments = values["workers"], values["increments"]
    per_lane_budget = max(8, STATE_EVENT_BUDGET // (workers * values["trials"]))
    states_per_attempt = 4 if values["mode"] == "select-for-update" else 3
    # Optimistic clients under contention try several times per increment; a guess, corrected by _Client.show.
    attempts = 1 + workers // 2 if values["mode"] == "optimistic" else 1
    every = max(1, math.ceil(increments * attempts * states_per_attempt / per_lane_budget))
    if every > 1 and number == 0:
        emit("log", text=f"-- too many attempts to draw them all: the lanes show one attempt in {every} of each client")
    counter_id = _with_own_connection(lambda: counters().create(run_id=uuid.uuid4()).pk)
    trial = _Trial(
        counter_id=counter_id, mode=values["mode"], window_s=values["window_ms"] / 1000, increments=increments,
        clients=[_Client(index=i, emit=emit, every=every, budget=per_lane_budget) for i in range(workers)],
        emit=emit, capture_sql=number == 0,
        # The clients, the monitor and this thread; the timeout frees them all if a connection never opens.
        start=threading.Barrier(workers + 2, timeout=30),
    )
    threads = [threading.Thread(target=_client_thread, args=(trial, client), name=f"counter-race-client-{client.index}")
               for client in trial.clients]
    monitor = threading.Thread(target=_monitor_thread, args=(trial,), name="counter-race-monitor")
    try:
        for thread in [*threads, monitor]:
            thread.start()
        try:
            trial.start.wait()  # every connection is open: start the clock
        except threading.BrokenBarrierError:
            pass
        trial.started_at = time.perf_counter()
        while alive := [thread for thread in threads if thread.is_alive()]:
            emit.check_cancelled()
            alive[0].join(timeout=0.05)
        trial.clients_done.set()
        monitor.join()
        if trial.errors:
            raise trial.errors[0]
        if trial.mode == "select-for-update":
            emit("log", text="-- time blocked on the row lock: " + ", ".join(
                f"client {client.index + 1} {client.lock_wait_s * 1000:.0f} ms" for client in trial.clients))
    finally:
        trial.stop.set()
        trial.clients_done.set()
        for thread in [*threads, monitor]:
            if thread.is_alive():
                thread.join()
        _with_own_connection(lambda: counters().filter(pk=counter_id).delete())

    elapsed_s = max(client.finished_at for client in trial.clients) - trial.started_at
    expected = trial.increments_done()
    final = trial.final
    assert final is not None  # the monitor's last reading: without it the trial raised its error above
    return {
        "expected": expected,
        "final": final,
        "lost": expected - final,
        "elapsed_s": elapsed_s,
        "retries": sum(client.retries for client in trial.clients),
        "lock_wait_ms_by_client": [round(client.lock_wait_s * 1000, 1) for client in trial.clients],
        "connections": len({client.backend_pid for client in trial.clients}),
    }


def _count(number: int, noun: str) -> str:
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {noun}s"


def _explain(mode: str, *, workers: int, window_ms: int, worst: dict[str, Any], increments_per_s: float,
             lock_wait_ms: float, retries: int) -> str:
    expected, final, lost = worst["expected"], worst["final"], worst["lost"]
    rate = f"{increments_per_s:,.0f} increments/s"
    clients = _count(workers, "client")
    if mode == "read-modify-write":
        if lost:
            return (f"{clients} each read the counter, waited {window_ms} ms and wrote back their own value + 1; "
                    f"writes that landed in another client's gap were overwritten, so {lost:,} of "
                    f"{_count(expected, 'increment')} were lost (final {final:,}).")
        if workers == 1:
            return (f"With a single client nobody else could write inside its read-write gap, so all "
                    f"{_count(expected, 'increment')} counted; add clients and they start to overwrite each other.")
        return (f"This time no write landed inside another client's read-write gap, so all {_count(expected, 'increment')} "
                f"counted; with more clients or a wider gap they start to overwrite each other.")
    if mode == "atomic-update":
        return (f"Each UPDATE added 1 to whatever the row held at that moment, inside PostgreSQL, so all "
                f"{_count(expected, 'increment')} of {clients} counted (final {final:,}, {lost:,} lost) at {rate}.")
    if mode == "select-for-update":
        turns = f"so the {clients} took turns" if workers > 1 else "so no other client could slip in"
        return (f"Each client locked the row before reading it, {turns}: final {final:,} of {expected:,}, "
                f"{lost:,} lost, but together they spent {lock_wait_ms:,.0f} ms waiting for the lock and managed {rate}.")
    return (f"A write counted only if the row's version was still the one read: {_count(retries, 'write')} found it had "
            f"moved on and retried, so final {final:,} of {expected:,}, {lost:,} lost, at {rate}.")


def run(params, emit):
    values = dict(params)
    workers = values["workers"]
    emit("lanes", count=workers, labels=[f"client {i + 1}" for i in range(workers)])
    results = []
    for number in range(values["trials"]):
        result = _run_trial(number=number, values=values, emit=emit)
        results.append(result)
        if values["trials"] > 1:
            emit("metric", name="final", value=result["final"])
            emit("log", text=f"-- trial {number + 1}: final {result['final']} of {result['expected']} "
                             f"({result['lost']} lost)")

    finals = [result["final"] for result in results]
    worst = min(results, key=lambda result: result["final"] - result["expected"])
    elapsed_s = sum(result["elapsed_s"] for result in results)
    increments_per_s = sum(result["expected"] for result in results) / elapsed_s if elapsed_s > 0 else 0.0
    lock_wait_ms = sum(sum(result["lock_wait_ms_by_client"]) for result in results)
    retries = sum(result["retries"] for result in results)
    text = _explain(values["mode"], workers=workers, window_ms=values["window_ms"], worst=worst,
                    increments_per_s=increments_per_s, lock_wait_ms=lock_wait_ms, retries=retries)
    summary = {
        "mode": values["mode"],
        # With several trials, `final` and `lost` describe the trial that lost the most.
        "expected": worst["expected"],
        "final": worst["final"],
        "lost": worst["lost"],
        "elapsed_ms": round(elapsed_s * 1000, 1),
        "increments_per_s": round(increments_per_s, 1),
        "lock_wait_ms": round(lock_wait_ms, 1),
        "lock_wait_ms_by_client": [round(sum(waits), 1)
                                   for waits in zip(*(r["lock_wait_ms_by_client"] for r in results), strict=True)],
        "retries": retries,
        "connections": max(result["connections"] for result in results),
    }
    if len(results) > 1:
        summary.update({
            "trials": len(results),
            "finals": finals,
            "final_min": min(finals),
            "final_max": max(finals),
            "final_mean": round(statistics.fmean(finals), 1),
        })
        text += (f" Over {len(results)} trials the final count ranged from {min(finals)} to {max(finals)} "
                 f"(mean {statistics.fmean(finals):.1f}).")
    summary["text"] = text
    return summary


# "Edit and run" opens this program: the idea above in a few lines of standard-library Python that a
# reader can change and run (the sandbox has no network and no database: timers, threads, processes).
starting_program = '''\
import threading
import time

balance = 0


def deposit(times):
    global balance
    for _ in range(times):
        seen = balance      # read
        time.sleep(0)       # another thread may run between the read and the write
        balance = seen + 1  # write back what this thread saw, plus one


threads = [threading.Thread(target=deposit, args=(100,)) for _ in range(4)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(f"4 threads x 100 deposits: expected 400, got {balance}")
# Try: one threading.Lock, held from the read to the write.
'''
