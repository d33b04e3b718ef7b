"""A step sandbox inherits none of the web server's secrets or addresses.

Both sandboxes run our own scripts, not readers' code, but they need little of
the server's environment: the asyncio one needs no database at all and the
PostgreSQL ones only their conninfo. The test opens real sessions through the
suite's Daphne and reads each sandbox process's environment from /proc.
"""
from __future__ import annotations

import psutil
import pytest

from tests.demos import helpers
from tests.demos.helpers import demo_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

SITE_VARIABLES = ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY", "SECRET_KEY", "DJANGO_SETTINGS_MODULE")


def _sandbox_environment(script: str) -> dict[str, str]:
    """The environment of the suite Daphne's one child process running `script`."""
    daphne = psutil.Process(helpers.default_server.process.pid)
    found = [child for child in daphne.children(recursive=True) if any(script in part for part in child.cmdline())]
    assert len(found) == 1, [child.cmdline() for child in daphne.children(recursive=True)]
    return found[0].environ()


@pytest.mark.parametrize(("path", "scenario", "script", "gets_conninfo"), [
    ("/ws/steps/last-mug/", "no-lock", "task_sandbox.py", False),
    ("/ws/steps/counter-race/", "read-modify-write", "stepper_sandbox.py", True),
])
async def test_a_step_sandbox_gets_no_site_secret_and_only_the_database_it_steps(path, scenario, script, gets_conninfo):
    async with demo_socket(path) as socket:
        await socket.send_json_to({"type": "open", "scenario": scenario, "ref": "env"})
        opened = await socket.receive_json_from(timeout=20)
        assert opened["type"] == "opened", opened
        environment = _sandbox_environment(script)
    leaked = [name for name in SITE_VARIABLES if name in environment]
    assert leaked == []
    assert ("STEPPER_CONNINFO" in environment) is gets_conninfo
    assert "PATH" in environment
