"""`make run`'s liveness probe tells a Daphne serving a burst from a wedged one.

A process that misses its probes while it uses CPU (a burst of readers, the
excess told `busy`) is given SUPERVISOR_BUSY_PROBE_FAILURES misses; one that
uses none (stopped, hung) is killed after SUPERVISOR_PROBE_FAILURES, as
before. Real processes: one spinning, one SIGSTOPped; the probe asks a port
where nothing listens, so every probe is missed.
"""
from __future__ import annotations

import signal
import subprocess
import sys
import time

from coursesite.embedded import free_port
from coursesite.stack import Child, Stack, Supervisor, SupervisorPolicy, kill_group

POLICY = SupervisorPolicy(probe_interval_s=0.0, probe_timeout_s=0.5, probe_failures=2, busy_probe_failures=4,
                          start_timeout_s=0.0)
SPIN = [sys.executable, "-c", "while True: pass"]


def supervised(tmp_path, *, stopped: bool) -> tuple[Supervisor, Child]:
    stack = Stack(tmp_path)
    process = subprocess.Popen(SPIN, start_new_session=True)
    if stopped:
        process.send_signal(signal.SIGSTOP)
    child = Child(name="daphne", argv=SPIN, process=process, probe_url=f"http://127.0.0.1:{free_port()}/hello")
    stack.children.append(child)
    return Supervisor(stack, env={}, policy=POLICY, processes_file=tmp_path / "processes.json"), child


def probes_until_replaced(supervisor: Supervisor, first: Child, most: int) -> int:
    """Probe every 0.4 s until the first process was killed and replaced; how many probes it took."""
    try:
        for count in range(1, most + 1):
            time.sleep(0.4)  # CPU time to see between probes
            supervisor.probe(0, supervisor.stack.children[0])
            if supervisor.stack.children[0] is not first:
                return count
        return most + 1
    finally:
        for child in supervisor.stack.children + [first]:
            if child.process.poll() is None:
                kill_group(child.process)


def test_a_daphne_that_misses_probes_while_using_cpu_gets_the_longer_allowance(tmp_path):
    supervisor, first = supervised(tmp_path, stopped=False)
    # The first probe only starts the CPU clock; the next four are busy misses.
    assert probes_until_replaced(supervisor, first, most=8) == 1 + POLICY.busy_probe_failures
    assert first.process.returncode == -signal.SIGKILL


def test_a_stopped_daphne_is_killed_after_the_usual_misses(tmp_path):
    supervisor, first = supervised(tmp_path, stopped=True)
    assert probes_until_replaced(supervisor, first, most=8) == POLICY.probe_failures
    assert first.process.returncode == -signal.SIGKILL
