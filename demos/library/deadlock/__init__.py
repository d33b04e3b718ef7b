"""Deadlock: transactions that lock two rows in opposite orders, and the one rule that prevents it.

`workers` clients, each a thread with its own PostgreSQL connection, move one
unit between the same two account rows, A and B, `transfers` times each. A
transfer is one transaction of two UPDATEs with a pause of `hold_ms` between
them, so the first row stays locked while the client reaches for the second.
Half the clients move A to B, half B to A.

In `unordered` mode each client updates its source row first: one client
holds A and waits for B while another holds B and waits for A. Neither can
move, and PostgreSQL, once a waiter has waited `deadlock_timeout`, looks for
that cycle, finds it and aborts one of the two with SQLSTATE 40P01 ("deadlock
detected"). The demo rolls the victim back and retries it, up to
`max_retries` times per transfer; past that the run fails and says so. The
reader should see clients fail and retry on their lanes, the summary count
the deadlocks and quote PostgreSQL's own report of the cycle, and the run take
longer than the same transfers taken one at a time. In `ordered` mode every
client updates the row with the lower id first, whatever the direction of its
transfer: clients still queue for the rows, but nobody ever holds one row
while waiting for a client that waits for it, so no deadlock can form.

Every run uses its own pair of rows, deleted when the run ends, and every
connection the demo opens is tagged with APPLICATION_NAME and closed before
`run` returns.
"""
from __future__ import annotations

import itertools
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from collections.abc import Callable
from typing import Any

from django.db import OperationalError, ProgrammingError, connection, connections, transaction
from django.db.models import F

from demos.base import StepMode
from demos.library.deadlock.step_sandbox import ACTIONS as STEP_ACTIONS
from demos.library.deadlock.step_text import STEP_TEXT
from demos.params import ChoiceParam, IntParam, ParamError

slug = "deadlock"
title = "Deadlock: two rows, two orders"
concept = ("Transactions that lock the same two rows in opposite orders deadlock under load, and PostgreSQL aborts one "
           "of them; taking the locks in one agreed order never deadlocks.")
placement = "worker"  # threads, real connections, blocking waits for row locks
time_limit_s = 60.0
lanes = "client"
headline = ("deadlocks", "committed", "elapsed_ms")
summary_fields = {
    "mode": ("Lock order", ""), "deadlocks": ("Deadlocks PostgreSQL broke", ""), "retries": ("Transfers retried", ""),
    "committed": ("Transfers committed", ""), "lock_wait_ms": ("Time waiting for row locks", "ms"),
    "deadlock_report": ("PostgreSQL's report", ""), "elapsed_ms": ("Time taken", "ms"),
    "one_at_a_time_ms": ("Estimate one at a time", "ms"), "alone_ms": ("One transfer alone", "ms"),
    "deadlock_timeout_ms": ("deadlock_timeout", "ms"), "deadlock_timeout_lowered": ("deadlock_timeout lowered", ""),
}
# A client thread holds the CPU only between statements; an UPDATE that takes a row lock may wait for it
# (`lock-wait`); its pause and COMMIT are `blocked`. A deadlock victim's lane turns `failed` until it retries.
lane_states = frozenset({"running", "blocked", "lock-wait", "done", "failed"})
waits = "PostgreSQL row locks (plus a time.sleep pause while a lock is held)"
# The reader closes the cycle by hand: two transactions, two rows, one statement per press (step_consumer.py).
step_mode = StepMode(
    consumer="demos.library.deadlock.step_consumer.StepConsumer",
    scenarios=tuple(STEP_ACTIONS),
    label="Step two transactions into a deadlock",
    fallback="Step mode: run two real PostgreSQL transactions one statement at a time and make them deadlock.",
    text=STEP_TEXT,
)

MODES = ("unordered", "ordered")
params = (
    ChoiceParam("mode", "unordered", MODES, label="Lock order",
                help="unordered: each client updates the row it takes from first, so opposite transfers lock in opposite "
                     "orders; ordered: every client updates the row with the lower id first."),
    IntParam("workers", 4, 2, 8, label="Clients",
             help="Concurrent clients, each with its own database connection; half move A to B, half B to A."),
    IntParam("transfers", 5, 1, 10, label="Transfers per client"),
    IntParam("hold_ms", 20, 1, 200, label="Pause holding the first row (ms)",
             help="How long each transfer keeps its first row locked before it updates the second."),
    IntParam("max_retries", 10, 0, 20, label="Retries per transfer",
             help="How often a transfer PostgreSQL aborted as a deadlock victim is tried again before the run gives up."),
)
# Small enough for the test suite's run over every demo.
smoke_params = {"workers": 2, "transfers": 2}

# Shows in pg_stat_activity.application_name, so the demo's connections can be counted.
APPLICATION_NAME = "coursesite deadlock"
SQLSTATE_DEADLOCK = "40P01"
SQLSTATE_NOT_ALLOWED = "42501"
# What the clients ask for their own sessions, so a deadlock costs 0.1 s instead of PostgreSQL's
# default 1 s. Only a superuser (or, from PostgreSQL 15, a role granted SET on the parameter) may
# change it; everyone else keeps the server's setting, and the summary says which one applied.
WANTED_DEADLOCK_TIMEOUT = "100ms"
# PostgreSQL's own default, assumed when sizing runs because the web process cannot ask the server.
SERVER_DEFAULT_DEADLOCK_TIMEOUT_MS = 1_000
# Round trips of one transfer beyond its pause, on a busy 2-core machine; only for refusing long runs.
OVERHEAD_MS = 5.0
RUN_BUDGET_MS = 40_000
# Transfers made alone, before the clients start, to measure what one costs without contention.
ALONE_TRANSFERS = 3
METRIC_INTERVAL_S = 0.05
MAX_BACKOFF_S = 1.0
STARTING_BALANCE = 1_000


def accounts():
    """The demo's account rows. Imported here, not at the top: this package is a Django
    app, and its models cannot load while Django is still importing apps."""
    from demos.library.deadlock.models import DeadlockAccount

    return DeadlockAccount.objects


def estimated_ms(values: dict[str, Any]) -> float:
    """About how long a run with these values could take, at worst, on a busy machine."""
    transfers = values["workers"] * values["transfers"]
    # Every transfer needs both rows, so transfers take turns whatever the order.
    estimate = transfers * (values["hold_ms"] + OVERHEAD_MS)
    if values["mode"] == "unordered":
        # With four clients we measured about one deadlock per transfer; deadlocks over the same two rows
        # come one after another, each costing a wait of deadlock_timeout (the server's default, at worst).
        estimate += transfers * SERVER_DEFAULT_DEADLOCK_TIMEOUT_MS
    return estimate


def check_params(values: dict[str, Any]) -> None:
    """Refuse configurations that might not finish well inside the time limit."""
    estimate = estimated_ms(values)
    if estimate > RUN_BUDGET_MS:
        raise ParamError(f"this could take about {estimate / 1000:.0f} s (each deadlock can cost PostgreSQL's 1 s "
                         f"deadlock_timeout); keep it under {RUN_BUDGET_MS // 1000} s with fewer clients or transfers")


class DeadlockRetriesExhausted(RuntimeError):
    """A transfer was chosen as the deadlock victim more often than `max_retries` allows."""


class _Stopped(Exception):
    """Another thread of the run failed or the run was cancelled: stop transferring."""


@dataclass(frozen=True)
class _Row:
    name: str
    pk: int


@dataclass
class _Client:
    """One client's lane, its lock order and what it measured."""

    index: int
    emit: Callable[..., float] | None  # None for the lone baseline client, which draws nothing
    source: _Row
    target: _Row
    committed: int = 0
    deadlocks: int = 0
    retries: int = 0
    lock_wait_s: float = 0.0
    backend_pid: int | None = None

    @property
    def label(self) -> str:
        return f"client {self.index + 1}"

    def show(self, state: str, label: str) -> None:
        if self.emit is not None:
            self.emit("state", lane=self.index, state=state, label=label)


@dataclass
class _Run:
    """What the threads of one run share."""

    mode: str
    transfers: int
    hold_s: float
    max_retries: int
    emit: Any
    # The clients and the run's own thread meet here once every connection is open.
    start: threading.Barrier
    clients: list[_Client] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    errors: list[BaseException] = field(default_factory=list)
    deadlock_report: str | None = None
    deadlock_timeout_ms: int | None = None
    timeout_lowered: bool = False
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail(self, error: BaseException) -> None:
        with self.lock:
            self.errors.append(error)
        self.stop.set()
        self.start.abort()

    def pause(self, seconds: float) -> None:
        """Sleep, but wake at once (and stop) when the run is over."""
        if self.stop.wait(seconds):
            raise _Stopped()

    def order_of(self, client: _Client) -> tuple[_Row, _Row]:
        """Which row the client's transfer updates first, and which second."""
        if self.mode == "ordered":
            first, second = sorted((client.source, client.target), key=lambda row: row.pk)
            return first, second
        return client.source, client.target

    def totals(self) -> dict[str, int]:
        return {
            "deadlocks": sum(client.deadlocks for client in self.clients),
            "retries": sum(client.retries for client in self.clients),
            "committed": sum(client.committed for client in self.clients),
        }


# --- one transfer ----------------------------------------------------------------------------------


def _sqlstate(error: BaseException) -> str | None:
    """The SQLSTATE of the psycopg error Django wrapped, if any."""
    return getattr(error.__cause__, "sqlstate", None)


def _deadlock_detail(error: BaseException) -> str:
    """PostgreSQL's DETAIL line of a deadlock error: who waited for whom."""
    diag = getattr(error.__cause__, "diag", None)
    return ((diag.message_detail if diag is not None else None) or str(error)).strip()


def _update(client: _Client, row: _Row, delta: int) -> None:
    """One UPDATE, which takes the row's lock (and waits while another transaction holds it)."""
    asked = time.perf_counter()
    try:
        accounts().filter(pk=row.pk).update(balance=F("balance") + delta)
    finally:
        client.lock_wait_s += time.perf_counter() - asked


def _transfer_once(run: _Run, client: _Client, label: str) -> None:
    """Move one unit from the client's source row to its target row, in one transaction."""
    first, second = run.order_of(client)
    delta = {client.source: -1, client.target: +1}
    client.show("running", f"{label}: BEGIN")
    with transaction.atomic():
        client.show("lock-wait", f"UPDATE {first.name} (takes its lock)")
        _update(client, first, delta[first])
        client.show("blocked", f"holding {first.name}, pausing")
        run.pause(run.hold_s)
        client.show("lock-wait", f"UPDATE {second.name} (takes its lock)")
        _update(client, second, delta[second])
        client.show("blocked", "COMMIT")


def _record_deadlock(run: _Run, client: _Client, error: BaseException) -> None:
    detail = _deadlock_detail(error)
    with run.lock:  # check-then-set: only the first report is kept and logged
        first, run.deadlock_report = run.deadlock_report is None, run.deadlock_report or detail
    if first and run.emit is not None:
        run.emit("log", text=f"-- {client.label} was the deadlock victim; PostgreSQL said: ERROR: deadlock detected")
        for line in detail.splitlines():
            run.emit("log", text=f"DETAIL: {line}")
        processes = ", ".join(f"{other.backend_pid} is {other.label}" for other in run.clients if other.backend_pid)
        run.emit("log", text=f"-- (processes: {processes})")


def _transfer(run: _Run, client: _Client, number: int) -> None:
    """One transfer, retried while PostgreSQL picks it as a deadlock victim, at most `max_retries` times."""
    for attempt in itertools.count():
        if run.stop.is_set():
            raise _Stopped()
        label = f"transfer {number + 1}" + (f", retry {attempt}" if attempt else "")
        try:
            _transfer_once(run, client, label)
        except OperationalError as error:
            if _sqlstate(error) != SQLSTATE_DEADLOCK:
                raise
            client.deadlocks += 1
            _record_deadlock(run, client, error)
            client.show("failed", "deadlock victim: rolled back")
            if attempt >= run.max_retries:
                raise DeadlockRetriesExhausted(
                    f"{client.label} gave up on its transfer {number + 1}: PostgreSQL chose it as the deadlock victim "
                    f"{attempt + 1} time{'s' if attempt else ''}, and max_retries is {run.max_retries}."
                ) from None
            client.retries += 1
            # A random back-off ("full jitter"), growing with each failure, so the same clients do not meet
            # again in step: about the time the others need to finish a transfer each, doubled per failure.
            backoff_s = random.uniform(0, min(MAX_BACKOFF_S, run.hold_s * len(run.clients) * 2 ** attempt))
            client.show("blocked", f"back-off {backoff_s * 1000:.0f} ms")
            run.pause(backoff_s)
            continue
        client.committed += 1
        return


# --- threads ---------------------------------------------------------------------------------------


def _lower_deadlock_timeout(cursor) -> bool:
    """Ask for WANTED_DEADLOCK_TIMEOUT in this session; False when PostgreSQL does not allow it."""
    try:
        cursor.execute("SELECT set_config('deadlock_timeout', %s, false)", [WANTED_DEADLOCK_TIMEOUT])
    except ProgrammingError as error:
        if _sqlstate(error) != SQLSTATE_NOT_ALLOWED:
            raise
        return False
    return True


def _open_tagged_connection() -> tuple[int, int, bool]:
    """Open this thread's connection, name it for pg_stat_activity and shorten its deadlock_timeout if allowed.

    Returns (backend pid, deadlock_timeout in ms as this session has it, whether it was lowered).
    """
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('application_name', %s, false), pg_backend_pid()", [APPLICATION_NAME])
        backend_pid = cursor.fetchone()[1]
        lowered = _lower_deadlock_timeout(cursor)
        # pg_settings gives this session's value, in the parameter's unit (ms).
        cursor.execute("SELECT setting::int FROM pg_settings WHERE name = 'deadlock_timeout'")
        return backend_pid, cursor.fetchone()[0], lowered


def _client_thread(run: _Run, client: _Client) -> None:
    try:
        client.backend_pid, timeout_ms, lowered = _open_tagged_connection()
        with run.lock:
            run.deadlock_timeout_ms, run.timeout_lowered = timeout_ms, lowered
        run.start.wait()
        for number in range(run.transfers):
            _transfer(run, client, number)
        client.show("done", f"{client.committed} committed")
    except _Stopped:
        pass
    except BaseException as error:  # RunCancelled from emit included: the main thread re-raises it
        run.fail(error)
    finally:
        connections.close_all()


def _with_own_connection(work: Callable[[], Any]) -> Any:
    """Run `work` in a short-lived thread whose tagged connection is closed when it ends.

    The Celery task's own thread keeps its connection for the engine; the
    demo's connections all end with the run.
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

    thread = threading.Thread(target=target, name="deadlock-setup")
    thread.start()
    thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome["value"]


def _create_rows(run_id: uuid.UUID) -> tuple[_Row, _Row]:
    from demos.library.deadlock.models import DeadlockAccount

    created = accounts().bulk_create(
        [DeadlockAccount(run_id=run_id, name=name, balance=STARTING_BALANCE) for name in ("A", "B")]
    )
    row_a, row_b = (_Row(name=account.name, pk=account.pk) for account in created)
    return row_a, row_b


def _alone_ms(run: _Run, row_a: _Row, row_b: _Row) -> float:
    """The fastest of a few transfers made with no other client about: what one costs without contention."""
    lone = _Client(index=-1, emit=None, source=row_a, target=row_b)
    times = []
    for _ in range(ALONE_TRANSFERS):
        started = time.perf_counter()
        _transfer_once(run, lone, "alone")
        times.append(time.perf_counter() - started)
    return min(times) * 1000


def _balances(run_id: uuid.UUID) -> dict[str, int]:
    return dict(accounts().filter(run_id=run_id).values_list("name", "balance"))


# --- the run ---------------------------------------------------------------------------------------


def _count(number: int, noun: str, plural: str | None = None) -> str:
    return f"{number:,} {noun}" if number == 1 else f"{number:,} {plural or noun + 's'}"


def _explain(*, mode: str, workers: int, totals: dict[str, int], elapsed_ms: float, serial_ms: float, alone_ms: float,
             lock_wait_ms: float, deadlock_timeout_ms: int, timeout_lowered: bool, hold_ms: int) -> str:
    deadlocks, committed = totals["deadlocks"], totals["committed"]
    clients = _count(workers, "client")
    setting = (f"deadlock_timeout, lowered to {deadlock_timeout_ms} ms for these sessions" if timeout_lowered
               else f"deadlock_timeout, the server's {deadlock_timeout_ms} ms")
    baseline = (f"The run took {elapsed_ms:,.0f} ms, against {serial_ms:,.0f} ms for the same {committed} transfers "
                f"made one at a time at the speed of one made alone ({alone_ms:.0f} ms)")
    waited = f"together the clients spent {lock_wait_ms:,.0f} ms inside the UPDATEs that take the row locks"
    if mode == "ordered":
        text = (f"Every client updated the row with the lower id first, so {clients} queued for the rows but none ever "
                f"held one while waiting for a client that waited for it: 0 deadlocks, all {committed} transfers "
                f"committed first time. {baseline}; {waited}.")
    elif deadlocks:
        retries = _count(totals["retries"], "retry", "retries")
        text = (f"{clients} locked the same two rows in opposite orders and PostgreSQL found "
                f"{_count(deadlocks, 'deadlock')}: each time transactions held rows the others wanted, PostgreSQL "
                f"waited its {setting}, then aborted one (SQLSTATE 40P01) and the demo retried it, {retries} in all, "
                f"until all {committed} transfers committed. {baseline}; {waited}.")
    else:
        text = (f"This time the {clients} never met head on: no deadlock, all {committed} transfers committed. With more "
                f"clients or a longer pause ({hold_ms} ms now) opposite orders collide. {baseline}.")
    if alone_ms > hold_ms + 50:
        # One transfer alone should cost its pause plus a few round trips; far more means a busy machine.
        text += (f" A transfer alone took {alone_ms:.0f} ms for a {hold_ms} ms pause: the machine was busy, "
                 "so the times are noise.")
    return text


def run(params, emit):
    values = dict(params)
    workers = values["workers"]
    emit("lanes", count=workers, labels=[f"client {i + 1} ({'A→B' if i % 2 == 0 else 'B→A'})" for i in range(workers)])
    shared = _Run(mode=values["mode"], transfers=values["transfers"], hold_s=values["hold_ms"] / 1000,
                  max_retries=values["max_retries"], emit=emit,
                  # The timeout frees every thread if a connection never opens.
                  start=threading.Barrier(workers + 1, timeout=30))
    run_id = uuid.uuid4()
    row_a, row_b = _with_own_connection(lambda: _create_rows(run_id))
    threads: list[threading.Thread] = []
    try:
        alone_ms = _with_own_connection(lambda: _alone_ms(shared, row_a, row_b))
        shared.clients = [
            _Client(index=i, emit=emit, source=row_a if i % 2 == 0 else row_b, target=row_b if i % 2 == 0 else row_a)
            for i in range(workers)
        ]
        for client in shared.clients[:2]:
            first, second = shared.order_of(client)
            emit("log", text=f"-- {client.label} moves {client.source.name} to {client.target.name}: BEGIN; "
                             f"UPDATE deadlock_account SET balance = balance {'-' if first == client.source else '+'} 1 "
                             f"WHERE id = {first.pk} ({first.name}); pause {values['hold_ms']} ms; "
                             f"UPDATE ... WHERE id = {second.pk} ({second.name}); COMMIT")
        threads = [threading.Thread(target=_client_thread, args=(shared, client), name=f"deadlock-client-{client.index}")
                   for client in shared.clients]
        for thread in threads:
            thread.start()
        try:
            shared.start.wait()  # every connection is open: start the clock
        except threading.BrokenBarrierError:
            pass
        started = time.perf_counter()
        shown: dict[str, int] = {}
        next_metrics = 0.0
        while alive := [thread for thread in threads if thread.is_alive()]:
            emit.check_cancelled()
            alive[0].join(timeout=METRIC_INTERVAL_S)
            if time.perf_counter() >= next_metrics:
                next_metrics = time.perf_counter() + METRIC_INTERVAL_S
                shown = _emit_metrics(emit, shared, shown)
        elapsed_ms = (time.perf_counter() - started) * 1000
        _emit_metrics(emit, shared, shown)
        if shared.errors:
            error = shared.errors[0]
            if isinstance(error, DeadlockRetriesExhausted):
                totals = shared.totals()
                raise DeadlockRetriesExhausted(
                    f"{error} By then: {_count(totals['deadlocks'], 'deadlock')}, "
                    f"{_count(totals['retries'], 'retry', 'retries')}, {totals['committed']} committed. "
                    f"PostgreSQL's report: {shared.deadlock_report}"
                ) from None
            raise error
        balances = _with_own_connection(lambda: _balances(run_id))
    finally:
        shared.stop.set()
        for thread in threads:
            thread.join()
        _with_own_connection(lambda: accounts().filter(run_id=run_id).delete())

    totals = shared.totals()
    lock_wait_ms = sum(client.lock_wait_s for client in shared.clients) * 1000
    serial_ms = totals["committed"] * alone_ms
    deadlock_timeout_ms = shared.deadlock_timeout_ms or SERVER_DEFAULT_DEADLOCK_TIMEOUT_MS
    # Every unit taken from one row went to the other: retries rolled back cleanly, nothing moved twice.
    if sum(balances.values()) != 2 * STARTING_BALANCE:
        raise RuntimeError(f"the two balances no longer add up: {balances}")
    text = _explain(mode=values["mode"], workers=workers, totals=totals, elapsed_ms=elapsed_ms, serial_ms=serial_ms,
                    alone_ms=alone_ms, lock_wait_ms=lock_wait_ms, deadlock_timeout_ms=deadlock_timeout_ms,
                    timeout_lowered=shared.timeout_lowered, hold_ms=values["hold_ms"])
    return {
        "mode": values["mode"],
        **totals,
        "lock_wait_ms": round(lock_wait_ms, 1),
        "deadlock_report": shared.deadlock_report,
        "elapsed_ms": round(elapsed_ms, 1),
        "one_at_a_time_ms": round(serial_ms, 1),
        "alone_ms": round(alone_ms, 1),
        "deadlock_timeout_ms": deadlock_timeout_ms,
        "deadlock_timeout_lowered": shared.timeout_lowered,
        "text": text,
    }


def _emit_metrics(emit, shared: _Run, shown: dict[str, int]) -> dict[str, int]:
    """Plot the deadlock, retry and commit counts when they change."""
    totals = shared.totals()
    for name, value in totals.items():
        if shown.get(name) != value:
            emit("metric", name=name, value=value)
    done = totals["committed"]
    if shown.get("committed") != done:
        emit("progress", done=done, total=len(shared.clients) * shared.transfers)
    return totals


# "Edit and run" opens this program: the idea above in a few lines of standard-library Python that a
# reader can change and run (the sandbox has no network and no database: timers, threads, processes).
starting_program = '''\
import threading
import time

first_lock, second_lock = threading.Lock(), threading.Lock()


def transfer(name, hold, want):
    with hold:
        time.sleep(0.1)  # while this lock is held, the other thread takes its first one
        if want.acquire(timeout=0.5):  # without a timeout, both would wait forever
            print(f"{name}: got both locks")
            want.release()
        else:
            print(f"{name}: gave up after 0.5 s; the lock it needs is held by the other thread")


one = threading.Thread(target=transfer, args=("thread 1", first_lock, second_lock))
two = threading.Thread(target=transfer, args=("thread 2", second_lock, first_lock))
one.start()
two.start()
one.join()
two.join()
# Try: make both threads take first_lock, then second_lock.
'''
