"""Which demo packages exist, found on disk without importing anything.

Settings need this before Django is set up: a demo package with `models.py`
is a Django app (its tables, its migrations), and Celery looks for `tasks`
modules in every demo package. The registry imports the demos themselves.
"""
from __future__ import annotations

from pathlib import Path

LIBRARY_DIR = Path(__file__).resolve().parent / "library"
LIBRARY_PACKAGE = "demos.library"


def demo_packages() -> list[str]:
    """Dotted names of the demo packages (directories with __init__.py) under demos/library/."""
    return sorted(f"{LIBRARY_PACKAGE}.{path.parent.name}" for path in LIBRARY_DIR.glob("*/__init__.py"))


def demo_apps() -> list[str]:
    """The demo packages that have tables, and so are installed as Django apps."""
    return [name for name in demo_packages() if (LIBRARY_DIR / name.rsplit(".", 1)[1] / "models.py").exists()]
