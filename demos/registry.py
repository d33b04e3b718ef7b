"""Every demo, by slug: the packages and modules in `demos/library/`, plus any
named in settings.DEMO_EXTRA_MODULES (the test suite adds small demos of its own).

The registry checks each demo's declarations when it loads and names what is
wrong, so a mistake shows at start-up, not when a reader presses Run.
"""
from __future__ import annotations

import importlib
import pkgutil
from types import ModuleType
from typing import Any, cast

from django.conf import settings
from django.utils.module_loading import import_string

from demos import library
from demos.base import LANE_STATES, Demo, JobQueue, StepMode

# A demo's starting point for the reader-code demo ("Edit and run"): a short program, at most this long.
MAX_STARTING_PROGRAM = 20_000
REQUIRED = ("slug", "title", "concept", "placement", "params", "time_limit_s", "lanes", "run")
# A summary leads with at most this many numbers; the widget puts the rest behind "Details".
MAX_HEADLINE = 3


class DemoDeclarationError(TypeError):
    """A demo module declares something the engine cannot use."""


def _check(name: str, module: ModuleType) -> None:
    missing = [attribute for attribute in REQUIRED if not hasattr(module, attribute)]
    if missing:
        raise DemoDeclarationError(f"{name} is not a demo: it lacks {', '.join(missing)}")
    if module.placement not in ("loop", "worker"):
        raise DemoDeclarationError(f"{name}: placement must be 'loop' or 'worker', not {module.placement!r}")
    unknown_states = set(getattr(module, "lane_states", ())) - LANE_STATES
    if unknown_states:
        raise DemoDeclarationError(f"{name}: lane_states has {', '.join(sorted(unknown_states))}; "
                                   f"the widget knows {', '.join(sorted(LANE_STATES))}")
    fields = getattr(module, "summary_fields", {})
    if not isinstance(fields, dict) or not all(
        isinstance(key, str) and isinstance(spec, tuple) and len(spec) == 2 and all(isinstance(part, str) for part in spec)
        for key, spec in fields.items()
    ):
        raise DemoDeclarationError(f"{name}: summary_fields must map each key to a (label, unit) pair of strings")
    headline = getattr(module, "headline", ())
    if not isinstance(headline, tuple) or len(headline) > MAX_HEADLINE or not all(isinstance(key, str) for key in headline):
        raise DemoDeclarationError(f"{name}: headline must be a tuple of at most {MAX_HEADLINE} summary keys")
    if not all(isinstance(queue, JobQueue) for queue in getattr(module, "queues", ())):
        raise DemoDeclarationError(f"{name}: queues must be demos.base.JobQueue values")
    if getattr(module, "burns_cpu", False) and module.placement != "worker":
        raise DemoDeclarationError(f"{name}: burns_cpu needs placement 'worker'; computing on the web loop stalls every socket")
    waits = getattr(module, "waits", None)
    if name.startswith(library.__name__ + ".") and not (isinstance(waits, str) and waits.strip()):
        raise DemoDeclarationError(f"{name}: declare `waits`, a short phrase saying what its waits really are "
                                   "(\"PostgreSQL\", \"a timer standing in for I/O\", \"none: CPU work\"); "
                                   "the widget shows it under the title")
    step_mode = getattr(module, "step_mode", None)
    if step_mode is not None and not isinstance(step_mode, StepMode):
        raise DemoDeclarationError(f"{name}: step_mode must be a demos.base.StepMode")
    _check_starting_program(name, getattr(module, "starting_program", None))
    if not isinstance(getattr(module, "runs_reader_code", False), bool):
        raise DemoDeclarationError(f"{name}: runs_reader_code must be True or False")


def _check_starting_program(name: str, program: object) -> None:
    """`starting_program`, when declared: a short program (str) that Python compiles."""
    if program is None:
        return
    if not isinstance(program, str) or not program.strip():
        raise DemoDeclarationError(f"{name}: starting_program must be a non-empty str, a program a reader can run")
    if len(program) > MAX_STARTING_PROGRAM:
        raise DemoDeclarationError(f"{name}: starting_program has {len(program):,} characters; "
                                   f"at most {MAX_STARTING_PROGRAM:,}")
    try:
        compile(program, "starting_program", "exec")
    except SyntaxError as error:
        raise DemoDeclarationError(f"{name}: starting_program does not compile: {error.msg} (line {error.lineno})") from error


def _load() -> dict[str, Demo]:
    names = [f"{library.__name__}.{info.name}" for info in pkgutil.iter_modules(library.__path__)]
    names += list(getattr(settings, "DEMO_EXTRA_MODULES", []))
    demos: dict[str, Any] = {}
    for name in names:
        module = importlib.import_module(name)
        _check(name, module)
        if module.slug in demos:
            raise DemoDeclarationError(f"two demos are called {module.slug!r}")
        demos[module.slug] = module
    if sum(bool(getattr(demo, "runs_reader_code", False)) for demo in demos.values()) > 1:
        raise DemoDeclarationError("more than one demo declares runs_reader_code; "
                                   "\"Edit and run\" needs to know which one runs a reader's program")
    return dict(sorted(demos.items()))


DEMOS: dict[str, Demo] = _load()


def get_demo(slug: object) -> Demo | None:
    """The demo called `slug`, or None."""
    return DEMOS.get(slug) if isinstance(slug, str) else None


def demo_module(demo: Demo) -> ModuleType:
    """The module (or package) a demo is: every demo is one, seen through the Demo protocol."""
    return cast(ModuleType, demo)


def library_demos() -> list[Demo]:
    """The demos readers can embed (the test suite's own are left out)."""
    return [demo for demo in DEMOS.values() if demo_module(demo).__name__.startswith(library.__name__ + ".")]


def reader_code_demo() -> Demo | None:
    """The demo that runs a reader's own program (it declares `runs_reader_code = True`), or None.

    "Edit and run" opens it with another demo's `starting_program`; the engine never knows it by name.
    """
    return next((demo for demo in DEMOS.values() if getattr(demo, "runs_reader_code", False)), None)


def program_of(demo: Demo) -> str | None:
    """The program "Edit and run" opens for `demo` (its `starting_program`), or None."""
    return getattr(demo, "starting_program", None)


def job_queues() -> list[JobQueue]:
    """Every job queue the demos declare (`queues`), each once, in slug order."""
    queues: dict[str, JobQueue] = {}
    for demo in DEMOS.values():
        for queue in getattr(demo, "queues", ()):
            queues.setdefault(queue.name, queue)
    return list(queues.values())


def step_mode_of(demo: Demo) -> StepMode | None:
    """The demo's step mode, or None when it has none."""
    return getattr(demo, "step_mode", None)


def step_modes() -> dict[str, StepMode]:
    """Slug to step mode, for every demo that has one."""
    return {slug: mode for slug, demo in DEMOS.items() if (mode := step_mode_of(demo)) is not None}


def step_consumer(slug: str) -> Any:
    """The websocket consumer class of a demo's step mode."""
    return import_string(step_modes()[slug].consumer)


def _edit_url(demo: Demo) -> str | None:
    """Where "Edit and run" opens this demo's starting program, or None (no program, or nothing runs one)."""
    if program_of(demo) is None or reader_code_demo() is None:
        return None
    from django.urls import reverse
    from django.utils.http import urlencode

    return reverse("demos:edit-and-run") + "?" + urlencode({"template": demo.slug})


def describe(demo: Demo) -> dict:
    """The public description served by GET /api/demos/."""
    step_mode = step_mode_of(demo)
    return {
        "slug": demo.slug,
        "title": demo.title,
        "concept": demo.concept,
        "placement": demo.placement,
        "time_limit_s": demo.time_limit_s,
        "lanes": demo.lanes,
        "burns_cpu": bool(getattr(demo, "burns_cpu", False)),
        "waits": getattr(demo, "waits", None),
        "lane_states": sorted(getattr(demo, "lane_states", LANE_STATES)),
        "summary_fields": {key: {"label": label, "unit": unit}
                           for key, (label, unit) in getattr(demo, "summary_fields", {}).items()},
        "headline": list(getattr(demo, "headline", ())),
        "step_mode": None if step_mode is None else {"scenarios": list(step_mode.scenarios), "label": step_mode.label},
        "edit_url": _edit_url(demo),
        "params": [param.describe() for param in demo.params],
    }
