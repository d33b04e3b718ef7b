"""`make run`'s supervisor reads PostgreSQL's lock file at any moment, including while PostgreSQL writes it.

PostgreSQL writes `postmaster.pid` a few lines at a time as it starts; the
status line comes last. The supervisor checking on a PostgreSQL that was
restarting at that moment raised from pgserver's reader, and the whole site
went down with it (the fault matrix's kill -9 PostgreSQL). These tests write
the file as PostgreSQL leaves it part-way, with no cluster behind it: what is
under test is how the lock file is read, which a real restart reaches only by
chance of timing.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from coursesite.embedded import EmbeddedPostgres
from coursesite.stack import Supervisor, SupervisorPolicy

# What the crashed supervisor found: seven of the eight lines, the status line not written yet.
HALF_WRITTEN = "{pid}\n{data_dir}\n1796153495\n5432\n\n\n  5431304   3145736\n"


def _cluster_with_lock_file(tmp_path: Path, content: str) -> EmbeddedPostgres:
    data_dir = tmp_path / "postgres"
    data_dir.mkdir()
    (data_dir / "postmaster.pid").write_text(content.format(pid=os.getpid(), data_dir=data_dir))
    return EmbeddedPostgres(data_dir)


def test_a_lock_file_half_written_by_a_starting_postgres_reads_as_running(tmp_path):
    assert _cluster_with_lock_file(tmp_path, HALF_WRITTEN).is_running()


def test_an_empty_or_missing_lock_file_reads_as_not_running(tmp_path):
    cluster = _cluster_with_lock_file(tmp_path, "")
    assert not cluster.is_running()
    (cluster.data_dir / "postmaster.pid").unlink()
    assert not cluster.is_running()


def test_a_lock_file_naming_a_process_that_has_exited_reads_as_not_running(tmp_path):
    exited = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    cluster = _cluster_with_lock_file(tmp_path, HALF_WRITTEN.replace("{pid}", exited.stdout.strip()))
    assert not cluster.is_running()


class _NoProcesses:
    redis = None
    children: list = []


def test_the_supervisor_checking_on_a_starting_postgres_neither_raises_nor_restarts_it(tmp_path):
    cluster = _cluster_with_lock_file(tmp_path, HALF_WRITTEN)
    supervisor = Supervisor(_NoProcesses(), {}, SupervisorPolicy(), tmp_path / "processes.json")  # type: ignore[arg-type]
    supervisor.check_embedded("postgres", cluster)
    assert "postgres" not in supervisor.down_since
