"""Hypothesis over every demo's declared parameters: no input crashes a run.

Each example either is refused with `invalid_params` (bounds, cross-field
rules) or starts; a started run must not fail within its first seconds, and
if it is still going it must stop promptly when cancelled. (That every run
ends by its time limit is proved for the engine itself in
test_cancel_and_cleanup.py and test_run_protocol.py.)
"""
import asyncio
import time

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from demos.registry import library_demos
from tests.demos.helpers import demo_socket

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow, pytest.mark.usefixtures("daphne_server")]

WATCH_S = 2.0


def param_values(param):
    described = param.describe()
    if described["type"] == "int":
        inside = st.integers(described["min"], described["max"])
        outside = st.integers(described["max"] + 1, described["max"] + 10**6) | st.integers(described["min"] - 10**6, described["min"] - 1)
        return inside | inside | outside | st.text(max_size=5) | st.none()
    if described["type"] == "choice":
        return st.sampled_from(described["choices"]) | st.text(max_size=12)
    return st.booleans() | st.integers()


def params_for(demo):
    return st.fixed_dictionaries({}, optional={param.name: param_values(param) for param in demo.params})


async def _check_one(demo, params):
    async with demo_socket() as socket:
        await socket.send_json_to({"type": "run", "demo": demo.slug, "params": params, "ref": "fuzz"})
        answer = await socket.receive_json_from(timeout=10)
        if answer["type"] == "error":
            assert answer["code"] in {"invalid_params", "busy"}, answer
            return
        assert answer["type"] == "accepted", answer
        run_id = answer["run"]
        deadline = time.monotonic() + WATCH_S
        while time.monotonic() < deadline:
            # receive_nothing polls without cancelling the app (a timed-out receive would).
            if await socket.receive_nothing(timeout=0.1):
                continue
            message = await socket.receive_json_from(timeout=5)
            if message["type"] == "finished":
                assert message["status"] == "succeeded", (params, message)
                return
        await socket.send_json_to({"type": "cancel", "run": run_id})
        asked = time.monotonic()
        while True:
            message = await socket.receive_json_from(timeout=5)
            if message["type"] == "finished":
                assert message["status"] in {"cancelled", "succeeded"}, (params, message)
                assert time.monotonic() - asked < 2
                return


@pytest.mark.parametrize("demo", library_demos(), ids=[demo.slug for demo in library_demos()])
def test_no_declared_input_crashes_a_run(demo, celery_worker_process, reset_worker_cache):
    @settings(max_examples=4, deadline=None, derandomize=True,
              suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
    @given(params=params_for(demo))
    def check(params):
        asyncio.run(_check_one(demo, params))

    check()
