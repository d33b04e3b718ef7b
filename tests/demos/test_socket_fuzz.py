"""Hostile and malformed frames never crash the socket, never leak a run, always get an answer."""
import json

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from demos.registry import DEMOS
from tests.demos.helpers import demo_socket, no_run_left_running, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

json_scalars = st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70) | st.floats(allow_nan=False) | st.text(max_size=50)
json_values = st.recursive(json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
param_names = st.sampled_from(sorted({p.name for demo in DEMOS.values() for p in demo.params})) | st.text(max_size=12)
hostile_params = st.dictionaries(param_names, json_values | st.integers() | st.sampled_from(["sequential", "concurrent", "", "x" * 5000]), max_size=5)
demo_names = st.sampled_from(["one-cook", "test-failing"]) | st.text(max_size=30) | json_values

run_messages = st.fixed_dictionaries(
    {"type": st.just("run"), "demo": demo_names, "params": hostile_params | json_values},
    optional={"ref": json_values | st.text(max_size=200)},
)
cancel_messages = st.fixed_dictionaries({"type": st.just("cancel")}, optional={"run": json_values})
other_objects = st.dictionaries(st.text(max_size=10), json_values, max_size=4)
frames = st.one_of(
    run_messages.map(json.dumps),
    cancel_messages.map(json.dumps),
    other_objects.map(json.dumps),
    json_values.map(json.dumps),
    st.text(min_size=1, max_size=200),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(batch=st.lists(frames, min_size=1, max_size=8))
async def test_any_frame_gets_an_answer_and_nothing_leaks(batch):
    async with demo_socket() as socket:
        for frame in batch:
            await socket.send_to(text_data=frame)
            answer = await socket.receive_json_from(timeout=5)
            # Skip stream messages of runs a lucky frame started.
            while answer["type"] in {"events", "finished"}:
                answer = await socket.receive_json_from(timeout=5)
            assert answer["type"] in {"error", "accepted"}, answer
            if answer["type"] == "error":
                assert isinstance(answer["code"], str) and isinstance(answer["message"], str)
            else:
                await socket.send_json_to({"type": "cancel", "run": answer["run"]})
                # Its end, before the next frame: a later run's stream must not interleave with it.
                await receive_until_finished(socket, answer["run"], timeout=10)
        # Still usable afterwards.
        accepted = await start_run(socket, "one-cook", {"requests": 1, "wait_ms": 0, "jitter_ms": 0}, ref="last")
        _, finished = await receive_until_finished(socket, accepted["run"])
        assert finished["status"] == "succeeded"
    assert await no_run_left_running()
