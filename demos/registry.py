"""Every demo, by slug: the modules in `demos/library/`, plus any named in
settings.DEMO_EXTRA_MODULES (the test suite adds small demos of its own)."""
from __future__ import annotations

import importlib
import pkgutil

from django.conf import settings

from demos import library
from demos.base import Demo, JobQueue


def _load() -> dict[str, Demo]:
    names = [f"{library.__name__}.{info.name}" for info in pkgutil.iter_modules(library.__path__)]
    names += list(getattr(settings, "DEMO_EXTRA_MODULES", []))
    demos: dict[str, Demo] = {}
    for name in names:
        module = importlib.import_module(name)
        if not isinstance(module, Demo):
            raise TypeError(f"{name} is not a demo: it lacks one of slug, title, concept, placement, params, time_limit_s, lanes, run")
        if module.placement not in ("loop", "worker"):
            raise TypeError(f"{name}: placement must be 'loop' or 'worker'")
        if module.slug in demos:
            raise TypeError(f"two demos are called {module.slug!r}")
        demos[module.slug] = module
    return dict(sorted(demos.items()))


DEMOS: dict[str, Demo] = _load()


def get_demo(slug: str) -> Demo | None:
    """The demo called `slug`, or None."""
    return DEMOS.get(slug) if isinstance(slug, str) else None


def library_demos() -> list[Demo]:
    """The demos readers can embed (the test suite's own are left out)."""
    return [demo for demo in DEMOS.values() if demo.__name__.startswith(library.__name__ + ".")]


def job_queues() -> list[JobQueue]:
    """Every job queue the demos declare (`queues`), each once, in slug order."""
    queues: dict[str, JobQueue] = {}
    for demo in DEMOS.values():
        for queue in getattr(demo, "queues", ()):
            queues.setdefault(queue.name, queue)
    return list(queues.values())


def describe(demo: Demo) -> dict:
    """The public description served by GET /api/demos/."""
    return {
        "slug": demo.slug,
        "title": demo.title,
        "concept": demo.concept,
        "placement": demo.placement,
        "time_limit_s": demo.time_limit_s,
        "lanes": demo.lanes,
        "params": [param.describe() for param in demo.params],
    }
