"""Where a lesson says I/O, the wait is real I/O: socket round trips to the upstream, another process.

Runs go through the suite's real Daphne; its upstream is the one the
`upstream_server` fixture started as `make run` starts it, so the pid that
answered can be checked against the process the test knows.
"""
import asyncio
import gc
import os
import signal
import types

import pytest

from coursesite.embedded import free_port
from demos import registry, upstream
from demos.library import one_cook
from tests.conftest import BASE_DIR, chromium
from tests.demos.helpers import demo_socket, open_lesson_demo, receive_until_finished, start_run
from tests.servers import start_upstream, stop_process

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]


async def _run(slug: str, params: dict, *, server=None, timeout: float = 40) -> tuple[list[dict], dict]:
    async with demo_socket(server=server) as socket:
        accepted = await start_run(socket, slug, params)
        batches, finished = await receive_until_finished(socket, accepted["run"], timeout=timeout)
    return [event for batch in batches for event in batch["events"]], finished


async def test_500_concurrent_requests_go_over_sockets_and_take_about_the_longest_wait(upstream_server, daphne_server):
    _, finished = await _run("one-cook", {"mode": "concurrent", "requests": 500})
    assert finished["status"] == "succeeded", finished
    summary = finished["summary"]
    # Every request crossed the wire and was answered by the upstream process, not by Daphne.
    assert summary["requests_sent"] == summary["answers_received"] == 500
    assert 1 <= summary["connections_made"] <= upstream.CONNECTIONS_PER_RUN
    assert summary["bytes_sent"] >= 500 * len("WAIT 0 300\n") and summary["bytes_received"] >= 500 * len("OK 0 1 1\n")
    assert summary["upstream_pids"] == [upstream_server.process.pid]
    assert summary["web_process_pid"] == daphne_server.process.pid != upstream_server.process.pid
    # The claim: overlapping round trips take about the longest one, not the sum.
    assert summary["total_ms"] <= 1.5 * summary["longest_wait_ms"], summary
    assert summary["sum_of_waits_ms"] > 100 * summary["total_ms"]
    assert "round trip over TCP" in summary["text"]


@pytest.mark.parametrize("wait_ms", [0, 200], ids=["answers before the launch is over", "answers after it"])
async def test_every_lane_is_told_it_waits_from_when_it_began_and_before_it_is_told_it_is_done(upstream_server,
                                                                                            wait_ms):
    # In concurrent mode the lanes hear "waiting" once every request is on its way (the bookkeeping stays out of
    # the launch); with waits of 0 ms many answers come back before that, and their lanes must still hear it first.
    events, finished = await _run("one-cook", {"mode": "concurrent", "requests": 2000, "wait_ms": wait_ms,
                                                "jitter_ms": 0})
    assert finished["status"] == "succeeded", finished
    states: dict[int, list[tuple[str, float]]] = {}
    for event in events:
        if event["kind"] == "state":
            states.setdefault(event["lane"], []).append((event["state"], event["t"]))
    assert sorted(states) == list(range(2000))
    for lane, seen in states.items():
        assert [state for state, _ in seen] == ["waiting", "done"], (lane, seen)
        (_, began), (_, ended) = seen
        assert began <= ended, (lane, seen)
    # Each "waiting" carries the time its request began: the launch's staircase, not the moment it was announced.
    began = [seen[0][1] for _, seen in sorted(states.items())]
    assert began == sorted(began)
    if wait_ms:
        assert max(began) - min(began) < wait_ms, began[::200]


async def test_ten_thousand_requests_are_all_on_the_wire_before_their_tasks_are_made(upstream_server):
    # The concurrent launch writes every request first and makes the tasks that await them while they are in
    # flight; the summary says when the last request began waiting, and that is well before any answer is due.
    _, finished = await _run("one-cook", {"mode": "concurrent", "requests": 10_000, "wait_ms": 1_000, "jitter_ms": 0},
                             timeout=60)
    summary = finished["summary"]
    assert finished["status"] == "succeeded", finished
    assert summary["requests_sent"] == summary["answers_received"] == 10_000
    assert summary["launch_ms"] < 1_000 <= summary["longest_wait_ms"], summary
    assert f"The last request began its wait {summary['launch_ms']:.0f} ms into the run." in summary["text"]


async def test_a_run_cut_short_while_its_requests_are_in_flight_leaves_no_answer_unretrieved():
    # Pure demo logic, no server: a stand-in upstream fails one answer and cancels the run mid-launch, before a
    # task awaits any answer. Every answer left must be cancelled or read, or asyncio logs one line per answer.
    loop = asyncio.get_running_loop()
    unhandled: list[dict] = []
    previous_handler = loop.get_exception_handler()
    loop.set_exception_handler(lambda _, context: unhandled.append(context))
    answers: list[asyncio.Future] = []

    class CutShort:
        def wait(self, wait_ms: float) -> asyncio.Future:
            answers.append(answer := loop.create_future())
            if len(answers) == 300:
                answer.set_exception(upstream.UpstreamUnavailable("the upstream closed the connection"))
            if len(answers) == 600:
                asyncio.current_task().cancel()  # lands at the launch's next yield
            return answer

    params = {"mode": "concurrent", "requests": 10_000, "wait_ms": 300, "jitter_ms": 0}
    try:
        with pytest.raises(asyncio.CancelledError):
            await one_cook.serve_requests(params, _Recorder(), CutShort())
        assert 600 <= len(answers) < 10_000
        assert all(answer.done() for answer in answers)
        del answers[:]
        gc.collect()
        await asyncio.sleep(0)
    finally:
        loop.set_exception_handler(previous_handler)
    assert unhandled == []


class _Recorder:
    """Stands in for the run's event recorder: keeps nothing."""

    def __call__(self, kind: str, **fields) -> None:
        pass

    def elapsed_ms(self) -> float:
        return 0.0


async def test_sequential_round_trips_add_up_to_the_sum_of_the_waits():
    _, finished = await _run("one-cook", {"mode": "sequential", "requests": 5, "wait_ms": 100, "jitter_ms": 0})
    summary = finished["summary"]
    assert finished["status"] == "succeeded" and summary["answers_received"] == 5
    assert summary["sum_of_waits_ms"] >= 5 * 100
    assert summary["total_ms"] >= summary["sum_of_waits_ms"]


async def test_timer_mode_says_so_and_opens_no_socket():
    _, finished = await _run("one-cook", {"io": "timer", "requests": 5, "wait_ms": 20})
    assert finished["status"] == "succeeded"
    assert "connections_made" not in finished["summary"] and "TCP" not in finished["summary"]["text"]
    _, finished = await _run("gather-vs-loop", {"io": "timer", "mode": "gather", "calls": 40, "limit": 20})
    assert finished["status"] == "succeeded" and finished["summary"]["rejected"] == 20
    assert "connections_made" not in finished["summary"] and "TCP" not in finished["summary"]["text"]


async def test_the_upstream_counts_and_limits_the_calls_gather_makes(upstream_server):
    _, finished = await _run("gather-vs-loop", {"mode": "gather", "calls": 40, "limit": 20, "call_ms": 100})
    summary = finished["summary"]
    assert finished["status"] == "succeeded"
    assert summary["requests_sent"] == 40 and summary["upstream_pids"] == [upstream_server.process.pid]
    # The upstream, not the client, admitted twenty and turned twenty away.
    assert summary["peak_admitted"] == 20 and summary["rejected"] == 20


async def test_with_the_upstream_down_a_run_fails_at_once_and_says_why(daphne_factory):
    nobody_listens = f"127.0.0.1:{free_port()}"
    server = await asyncio.to_thread(daphne_factory, DEMO_UPSTREAM_ADDRESS=nobody_listens)
    for slug in ("one-cook", "gather-vs-loop"):
        _, finished = await _run(slug, {}, server=server, timeout=15)
        assert finished["status"] == "failed"
        assert "cannot reach the upstream at " + nobody_listens in finished["summary"]["text"]
        assert finished["summary"]["elapsed_ms"] < 6_000


async def test_an_upstream_that_dies_mid_run_fails_the_run_instead_of_hanging(daphne_factory):
    own_upstream = await asyncio.to_thread(start_upstream, base_dir=BASE_DIR)
    try:
        server = await asyncio.to_thread(daphne_factory, DEMO_UPSTREAM_ADDRESS=f"127.0.0.1:{own_upstream.port}")
        async with demo_socket(server=server) as socket:
            accepted = await start_run(socket, "one-cook", {"requests": 20, "wait_ms": 2_000, "jitter_ms": 0})
            await asyncio.sleep(0.5)
            os.kill(own_upstream.process.pid, signal.SIGKILL)
            _, finished = await receive_until_finished(socket, accepted["run"], timeout=10)
    finally:
        await asyncio.to_thread(stop_process, own_upstream.process)
    assert finished["status"] == "failed"
    assert "20 of 20 requests got no answer" in finished["summary"]["text"]
    assert "closed the connection" in finished["summary"]["text"]
    assert finished["summary"]["elapsed_ms"] < 2_000  # it failed when the sockets closed, not at the wait's end


async def _exchange(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    try:
        return await asyncio.wait_for(reader.read(), timeout=5)
    finally:
        writer.close()


async def test_the_upstream_refuses_what_is_out_of_bounds(upstream_server):
    port = upstream_server.port
    assert await _exchange(port, b"WAIT 1 %d\n" % (upstream.MAX_DELAY_MS + 1)) == b"ERR delay over %d ms\n" % upstream.MAX_DELAY_MS
    assert await _exchange(port, b"x" * (upstream.MAX_LINE_BYTES + 1)) == b"ERR line too long\n"
    assert (await _exchange(port, b"GET / HTTP/1.0\r\n\r\n")).startswith(b"ERR expected WAIT")


async def test_the_upstream_answers_after_the_delay_asked_for_and_keeps_the_pool_limit(upstream_server):
    reader, writer = await asyncio.open_connection("127.0.0.1", upstream_server.port)
    try:
        started = asyncio.get_running_loop().time()
        writer.write(b"WAIT 1 200 p 1\nWAIT 2 0 p 1\n")
        busy = await asyncio.wait_for(reader.readline(), timeout=5)
        answered = await asyncio.wait_for(reader.readline(), timeout=5)
        elapsed = asyncio.get_running_loop().time() - started
    finally:
        writer.close()
    assert busy == b"BUSY 2\n"
    assert answered == b"OK 1 %d 1\n" % upstream_server.process.pid
    assert 0.19 <= elapsed < 1.5


def test_the_upstream_listens_on_loopback_only(upstream_server):
    connections = [line.split() for line in open("/proc/net/tcp").read().splitlines()[1:]]
    listening = {local for local, state in ((row[1], row[3]) for row in connections) if state == "0A"}
    assert f"0100007F:{upstream_server.port:04X}" in listening
    assert f"00000000:{upstream_server.port:04X}" not in listening


def test_the_registry_refuses_a_library_demo_that_does_not_say_what_it_waits_on():
    undeclared = types.ModuleType("demos.library.undeclared")
    vars(undeclared).update({name: value for name, value in vars(one_cook).items() if not name.startswith("__")})
    registry._check(undeclared.__name__, undeclared)  # as declared, it loads
    for waits in (None, "", "  "):
        if waits is None:
            del undeclared.waits
        else:
            undeclared.waits = waits
        with pytest.raises(registry.DemoDeclarationError, match="declare `waits`"):
            registry._check(undeclared.__name__, undeclared)


def test_api_serves_what_each_demo_waits_on(client):
    demos = {demo["slug"]: demo for demo in client.get("/api/demos/").json()["demos"]}
    assert demos["one-cook"]["waits"].startswith("real socket round trips to an upstream process")
    assert demos["counter-race"]["waits"].startswith("PostgreSQL")
    assert "standing in for I/O" in demos["await-race"]["waits"]


@pytest.mark.browser
async def test_the_widget_shows_what_the_demo_waits_on(course, site_url):
    async with chromium() as context:
        page, demo, problems = await open_lesson_demo(context, site_url + "/concurrency-and-async/one-cook-many-dishes/")
        waits = demo.locator(".demo-waits")
        assert await waits.inner_text() == "Waits: real socket round trips to an upstream process (timer mode: asyncio.sleep standing in)"
        assert problems == []
