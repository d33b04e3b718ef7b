"""The engine knows no demo by name: only a demo's package, the lessons that embed it, its tests, docs/ and bench/ do."""
from __future__ import annotations

import re
import subprocess

from django.conf import settings

from demos.registry import demo_module, library_demos

# Where a demo's name may appear; everything else tracked by git is the engine or the site around it.
MAY_NAME_DEMOS = ("demos/library/", "lessons/content/", "tests/", "docs/", "bench/")
# Prose for people, not code the engine runs (the README documents the shipped demos).
PROSE = {"README.md", "CONTRIBUTING.md", "package-lock.json"}


def _engine_files() -> list[str]:
    tracked = subprocess.run(["git", "ls-files"], cwd=settings.BASE_DIR, capture_output=True, text=True, check=True)
    return [path for path in tracked.stdout.splitlines()
            if not path.startswith(MAY_NAME_DEMOS) and path not in PROSE and not path.endswith((".svg", ".png"))]


def _names_of_every_demo() -> set[str]:
    names = set()
    for demo in library_demos():
        package = demo_module(demo).__name__.rsplit(".", 1)[1]
        names |= {demo.slug, package, package.replace("_", "-"), demo.slug.replace("-", "_")}
    return names


def test_no_engine_file_spells_the_name_of_a_demo():
    pattern = re.compile("|".join(re.escape(name) for name in sorted(_names_of_every_demo(), key=len, reverse=True)),
                         re.IGNORECASE)
    found = []
    for path in _engine_files():
        try:
            text = (settings.BASE_DIR / path).read_text()
        except (UnicodeDecodeError, FileNotFoundError):
            continue
        found += [f"{path}:{number}: {line.strip()[:100]}" for number, line in enumerate(text.splitlines(), 1)
                  if pattern.search(line)]
    assert not found, "engine files that name a demo:\n" + "\n".join(found)
