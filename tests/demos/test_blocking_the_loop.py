"""blocking-the-loop: a blocking call freezes its loop for the whole block; awaiting or offloading it does not."""
import pytest

from lessons.rendering import render_lesson_markdown
from lessons.services import shipped_courses
from tests.demos.helpers import demo_socket, receive_runs, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

LESSON = "03-the-event-loop.md"


def _events(batches):
    return [event for batch in batches for event in batch["events"]]


async def test_block_freezes_the_heartbeat_while_await_and_offload_keep_it_ticking(celery_worker_thread, reset_worker_cache):
    async with demo_socket() as socket:
        block = await start_run(socket, "blocking-the-loop", {"mode": "block"}, ref="block")
        awaited = await start_run(socket, "blocking-the-loop", {"mode": "await"}, ref="await")
        first = await receive_runs(socket, [block["run"], awaited["run"]], timeout=60)
        offload = await start_run(socket, "blocking-the-loop", {"mode": "offload"}, ref="offload")
        second = await receive_until_finished(socket, offload["run"], timeout=60)
    results = {"block": first[block["run"]], "await": first[awaited["run"]], "offload": second}
    block_ms = block["params"]["block_ms"]
    summaries = {}
    for mode, (batches, finished) in results.items():
        assert finished["status"] == "succeeded", finished
        summaries[mode] = summary = finished["summary"]
        events = _events(batches)
        assert events[0]["kind"] == "lanes"
        assert {e["name"] for e in events if e["kind"] == "metric"} == {"heartbeat_lag_ms", "request_latency_ms"}
        assert summary["idle_heartbeat_max_lag_ms"] <= summary["heartbeat_max_lag_ms"]
        # Under 100 requests a tail is their maximum, and the text names it so; an idle baseline stands beside it.
        assert summary["requests"] < 100 and summary["request_tail"] == f"max of {summary['requests']}"
        assert "p99" not in summary["text"] and "before the slow request" in summary["text"], summary["text"]
        assert summary["slow_request_ms"] >= 0.95 * block_ms
        assert str(round(summary["heartbeat_max_lag_ms"])) in summary["text"]

    # The whole block shows up as one frozen heartbeat, and the requests that arrived meanwhile waited it out.
    assert summaries["block"]["heartbeat_max_lag_ms"] >= 0.8 * block_ms
    assert summaries["block"]["request_tail_ms"] >= 0.6 * block_ms
    block_events = _events(results["block"][0])
    assert any(e["kind"] == "state" and e["state"] == "queued" for e in block_events)
    # Awaiting or offloading the same wait keeps the loop responsive. Typically the lag stays within a few
    # ms; on a loaded 2-core machine the OS alone has stalled this thread for up to ~200 ms, hence the margin.
    lags = {mode: summary["heartbeat_max_lag_ms"] for mode, summary in summaries.items()}
    for mode in ("await", "offload"):
        assert lags[mode] < 0.5 * block_ms, lags
        assert 2 * lags[mode] < lags["block"], lags
        assert summaries[mode]["request_tail_ms"] < 0.5 * block_ms, summaries


def test_the_event_loop_lesson_embeds_both_presets():
    source = (shipped_courses()[0] / LESSON).read_text()
    rendered = render_lesson_markdown(source)
    assert rendered.demo_slugs.count("blocking-the-loop") == 2
    assert 'data-demo="blocking-the-loop"' in rendered.html
