"""Resident memory of the site's own processes (the worker counted with its pool children)."""
from __future__ import annotations

import psutil


def rss_mib(pid: int, *, with_children: bool = False) -> float:
    process = psutil.Process(pid)
    total = process.memory_info().rss
    if with_children:
        total += sum(child.memory_info().rss for child in process.children(recursive=True))
    return round(total / 2**20, 1)


def sample(site) -> dict:
    pids = site.pids
    return {"daphne_mib": rss_mib(pids["daphne"]), "worker_mib": rss_mib(pids["celery worker"], with_children=True)}
