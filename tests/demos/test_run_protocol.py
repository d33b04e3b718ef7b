"""A run over the websocket: accepted, numbered event batches, finished with a measured summary."""
import pytest

from demos.models import Run
from tests.demos.helpers import demo_socket, receive_runs, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]


async def test_run_streams_accepted_events_then_finished():
    async with demo_socket() as socket:
        accepted = await start_run(socket, "one-cook", {"requests": 5, "wait_ms": 80, "mode": "concurrent"}, ref="mine")
        assert accepted["ref"] == "mine" and accepted["demo"] == "one-cook"
        assert accepted["params"] == {"mode": "concurrent", "io": "network", "requests": 5, "wait_ms": 80, "jitter_ms": 50}
        batches, finished = await receive_until_finished(socket, accepted["run"])
    assert [batch["seq"] for batch in batches] == list(range(len(batches)))
    events = [event for batch in batches for event in batch["events"]]
    assert all(isinstance(event["t"], (int, float)) and event["kind"] for event in events)
    assert sorted(e["lane"] for e in events if e["kind"] == "state" and e["state"] == "done") == [0, 1, 2, 3, 4]
    assert finished["status"] == "succeeded"
    summary = finished["summary"]
    assert summary["longest_wait_ms"] <= summary["total_ms"] < summary["sum_of_waits_ms"]
    assert "longest single wait" in summary["text"]
    run = await Run.objects.aget(id=accepted["run"])
    assert run.status == "succeeded" and run.summary == summary and len(run.events) == len(events)


async def test_sequential_takes_the_sum_and_concurrent_the_longest_wait():
    params = {"requests": 6, "wait_ms": 100, "jitter_ms": 20}
    async with demo_socket() as socket:
        sequential = await start_run(socket, "one-cook", {**params, "mode": "sequential"}, ref="a")
        concurrent = await start_run(socket, "one-cook", {**params, "mode": "concurrent"}, ref="b")
        results = await receive_runs(socket, [sequential["run"], concurrent["run"]])
    (_, seq_done), (_, con_done) = results[sequential["run"]], results[concurrent["run"]]
    seq, con = seq_done["summary"], con_done["summary"]
    # Generous margins for a busy 2-core machine; the gap is 6x.
    assert seq["total_ms"] >= 0.95 * seq["sum_of_waits_ms"]
    assert seq["total_ms"] <= 1.5 * seq["sum_of_waits_ms"]
    assert con["total_ms"] <= con["longest_wait_ms"] + 150
    assert con["total_ms"] * 3 < seq["total_ms"]


async def test_ten_thousand_requests_stream_in_few_large_batches():
    async with demo_socket() as socket:
        accepted = await start_run(socket, "one-cook", {"requests": 10_000, "wait_ms": 300, "jitter_ms": 50})
        batches, finished = await receive_until_finished(socket, accepted["run"], timeout=60)
    events = [event for batch in batches for event in batch["events"]]
    assert finished["status"] == "succeeded"
    assert sum(1 for e in events if e["kind"] == "state" and e["state"] == "done") == 10_000
    duration_s = max(e["t"] for e in events) / 1000
    # About 20 batches a second at most (plus the final flush).
    assert len(batches) <= 20 * duration_s + 3
    assert finished["summary"]["total_ms"] < 0.05 * finished["summary"]["sum_of_waits_ms"]


async def test_a_demo_that_raises_ends_as_failed_with_its_error():
    async with demo_socket() as socket:
        accepted = await start_run(socket, "test-failing", {"how": "raise"})
        _, finished = await receive_until_finished(socket, accepted["run"])
        assert finished["status"] == "failed"
        assert "the demo broke on purpose" in finished["summary"]["text"]
        assert "Traceback" not in finished["summary"]["text"]


async def test_a_run_past_its_time_limit_ends_as_timed_out():
    async with demo_socket() as socket:
        accepted = await start_run(socket, "test-failing", {"how": "hang"})
        _, finished = await receive_until_finished(socket, accepted["run"], timeout=10)
    assert finished["status"] == "timed_out"
    assert (await Run.objects.aget(id=accepted["run"])).status == "timed_out"
