"""Every error a client can cause gets an `error` message with a code, and the socket keeps working."""
import pytest

from tests.demos.helpers import demo_socket, no_run_left_running, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

QUICK = {"requests": 2, "wait_ms": 10, "jitter_ms": 0}


async def _error_then_still_usable(socket, expected_code: str) -> dict:
    error = await socket.receive_json_from(timeout=5)
    assert error["type"] == "error" and error["code"] == expected_code, error
    assert error["message"]
    accepted = await start_run(socket, "one-cook", QUICK, ref="after")
    _, finished = await receive_until_finished(socket, accepted["run"])
    assert finished["status"] == "succeeded"
    return error


@pytest.mark.parametrize("frame", ["{not json", "[1, 2]", '"run"', "42", '{"no": "type"}', '{"type": "dance"}'])
async def test_malformed_frames_are_bad_message(frame):
    async with demo_socket() as socket:
        await socket.send_to(text_data=frame)
        await _error_then_still_usable(socket, "bad_message")


async def test_binary_frame_is_bad_message():
    async with demo_socket() as socket:
        await socket.send_to(bytes_data=b"\x00\x01")
        await _error_then_still_usable(socket, "bad_message")


async def test_unknown_demo_echoes_the_ref():
    async with demo_socket() as socket:
        await socket.send_json_to({"type": "run", "demo": "no-such-demo", "params": {}, "ref": "x1"})
        error = await _error_then_still_usable(socket, "unknown_demo")
        assert error["ref"] == "x1"


@pytest.mark.parametrize(
    "params, named",
    [
        ({"requests": 0}, "requests"),
        ({"requests": 10_000_000}, "requests"),
        ({"requests": "ten"}, "requests"),
        ({"requests": True}, "requests"),
        ({"mode": "parallel"}, "mode"),
        ({"speed": 3}, "speed"),
        ([1, 2], "object"),
    ],
)
async def test_invalid_params_name_the_culprit(params, named):
    async with demo_socket() as socket:
        await socket.send_json_to({"type": "run", "demo": "one-cook", "params": params, "ref": "p"})
        error = await _error_then_still_usable(socket, "invalid_params")
        assert named in error["message"]
    assert await no_run_left_running()


async def test_a_third_run_on_one_socket_is_busy():
    slow = {"requests": 3, "wait_ms": 1500, "jitter_ms": 0, "mode": "concurrent"}
    async with demo_socket() as socket:
        first = await start_run(socket, "one-cook", slow, ref="1")
        await start_run(socket, "one-cook", slow, ref="2")
        await socket.send_json_to({"type": "run", "demo": "one-cook", "params": slow, "ref": "3"})
        while True:
            message = await socket.receive_json_from(timeout=5)
            if message["type"] == "error":
                break
        assert message["code"] == "busy" and message["ref"] == "3" and message["retry_after_s"] > 0
        await socket.send_json_to({"type": "cancel", "run": first["run"]})


async def test_site_wide_cap_is_busy_with_a_retry_hint(daphne_factory):
    server = daphne_factory(DEMO_MAX_LOOP_RUNS="1")
    slow = {"requests": 2, "wait_ms": 1500, "jitter_ms": 0}
    async with demo_socket(server=server) as first_reader, demo_socket(server=server) as second_reader:
        accepted = await start_run(first_reader, "one-cook", slow)
        await second_reader.send_json_to({"type": "run", "demo": "one-cook", "params": slow, "ref": "late"})
        error = await second_reader.receive_json_from(timeout=5)
        assert error["code"] == "busy" and "try again in about" in error["message"] and error["retry_after_s"] >= 1
        await first_reader.send_json_to({"type": "cancel", "run": accepted["run"]})
        _, finished = await receive_until_finished(first_reader, accepted["run"])
        # The slot is free again at once.
        retry = await start_run(second_reader, "one-cook", QUICK, ref="retry")
        await receive_until_finished(second_reader, retry["run"])


async def test_worker_demo_without_a_worker_is_unavailable(daphne_factory):
    # A fresh server: the suite's own may still remember a worker an earlier module ran.
    async with demo_socket(server=daphne_factory()) as socket:
        await socket.send_json_to({"type": "run", "demo": "test-blocking-worker", "params": {}, "ref": "w"})
        error = await _error_then_still_usable(socket, "unavailable")
        assert error["ref"] == "w"


async def test_cancelling_someone_elses_or_no_run_is_unknown_run():
    async with demo_socket() as socket:
        await socket.send_json_to({"type": "cancel", "run": "00000000-0000-0000-0000-000000000000"})
        await _error_then_still_usable(socket, "unknown_run")
