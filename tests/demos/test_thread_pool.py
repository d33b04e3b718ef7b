"""thread-pool: the total follows ceil(requests / threads) × wait, and requests queue once every thread is busy."""
import pytest

from lessons.rendering import render_lesson_markdown
from lessons.services import shipped_courses
from tests.demos.helpers import demo_socket, receive_runs, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]

LESSON = "04-thread-pools.md"


async def test_total_follows_the_waves_and_requests_queue_for_a_busy_pool(celery_worker_thread, reset_worker_cache):
    async with demo_socket() as socket:
        small_pool = await start_run(socket, "thread-pool", {}, ref="defaults")
        one_per_request = await start_run(socket, "thread-pool", {"threads": small_pool["params"]["requests"]}, ref="wide")
        results = await receive_runs(socket, [small_pool["run"], one_per_request["run"]], timeout=60)

    batches, finished = results[small_pool["run"]]
    assert finished["status"] == "succeeded", finished
    summary = finished["summary"]
    params = small_pool["params"]
    assert params["requests"] > params["threads"]  # the defaults make the pool queue
    assert abs(summary["total_ms"] - summary["predicted_ms"]) <= 0.25 * summary["predicted_ms"] + 100
    assert summary["peak_threads"] == params["threads"]
    # The last wave waited for every wave before it.
    waves_before_last = -(-params["requests"] // params["threads"]) - 1
    assert summary["max_queue_wait_ms"] >= 0.8 * waves_before_last * params["wait_ms"]
    events = [event for batch in batches for event in batch["events"]]
    lanes_used = {e["lane"] for e in events if e["kind"] == "state" and e["state"] == "blocked"}
    assert lanes_used == set(range(params["threads"]))
    served = [e["label"] for e in events if e["kind"] == "state" and e["state"] == "blocked"]
    assert sorted(served) == sorted(f"request {n + 1}" for n in range(params["requests"]))
    depths = [e["value"] for e in events if e["kind"] == "metric" and e["name"] == "queue_depth"]
    assert depths[0] == params["requests"] and depths[-1] == 0 and max(depths) == params["requests"]

    _, wide_finished = results[one_per_request["run"]]
    wide = wide_finished["summary"]
    assert wide["peak_threads"] == params["requests"]
    assert wide["max_queue_wait_ms"] < 0.2 * params["wait_ms"]
    assert wide["total_ms"] < 0.6 * summary["total_ms"]


def test_the_thread_pool_lesson_embeds_the_compare():
    rendered = render_lesson_markdown((shipped_courses()[0] / LESSON).read_text())
    assert rendered.demo_slugs.count("thread-pool") == 1
    assert 'data-demo="thread-pool"' in rendered.html
