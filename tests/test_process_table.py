"""The README's "What runs where" is the process table `make run` starts, word for word."""
from __future__ import annotations

import re

from django.conf import settings

from coursesite.processes import process_table_markdown, readme_processes, site_processes


def test_readme_lists_exactly_the_processes_make_run_starts():
    readme = (settings.BASE_DIR / "README.md").read_text()
    shown = re.search(r"<!-- process-table -->\n(.*?)\n<!-- /process-table -->", readme, re.S)
    assert shown, "README.md lost its process table markers"
    assert shown.group(1).strip() == process_table_markdown(readme_processes()), (
        "README.md's process table is stale: paste the output of `python -m coursesite.processes`")


def test_every_job_queue_a_demo_declares_gets_a_worker_fed_only_from_it():
    from demos.registry import job_queues

    queues = job_queues()
    assert queues, "some demo declares a job queue of its own"
    processes = site_processes(host="127.0.0.1", port=8000, run_dir=settings.BASE_DIR / "var" / "run", job_queues=queues)
    def queues_fed(process):
        argv = list(process.argv)
        return argv[argv.index("-Q") + 1].split(",") if "-Q" in argv else []

    for queue in queues:
        (worker,) = [process for process in processes if queue.name in queues_fed(process)]
        assert queues_fed(worker) == [queue.name]
        assert "--beat" not in worker.argv  # exactly one beat: the demo worker's
