"""Degenerate parameters give a summary that states what was measured, with no meaningless ratio."""
import random
from types import SimpleNamespace

import pytest

from tests.demos.helpers import demo_socket, receive_until_finished, start_run

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.usefixtures("daphne_server")]


async def _summary(demo: str, params: dict) -> dict:
    async with demo_socket() as socket:
        accepted = await start_run(socket, demo, params)
        _, finished = await receive_until_finished(socket, accepted["run"], timeout=30)
    assert finished["status"] == "succeeded", finished
    return finished["summary"]


@pytest.mark.parametrize("mode", ["concurrent", "sequential"])
async def test_one_cook_with_zero_waits_prints_no_ratio(mode):
    summary = await _summary("one-cook", {"mode": mode, "requests": 20, "wait_ms": 0, "jitter_ms": 0})
    assert "×" not in summary["text"] and "(0 ms)" not in summary["text"], summary["text"]
    assert "20 requests" in summary["text"] and "overhead" in summary["text"]


async def test_one_cook_whose_jitter_takes_every_wait_to_zero_says_so_rather_than_no_wait_asked_for(monkeypatch):
    # The demo's own coroutine, on timers, with the jitter's draws pinned low: a live run reaches this case only
    # by chance (20 ms with 50 ms of jitter: every draw below -20 ms, 2.7 % of runs of 3 requests).
    from demos.library import one_cook

    class LowestDraws(random.Random):
        def uniform(self, a, b):
            return a

    class NoEvents:  # what `run` is given (demos.base.Emit), recording nothing
        def __call__(self, kind, **fields):
            return 0.0

        def elapsed_ms(self):
            return 0.0

        def check_cancelled(self):
            pass

    monkeypatch.setattr(one_cook, "random", SimpleNamespace(Random=LowestDraws))
    summary = await one_cook.serve_requests({"mode": "concurrent", "requests": 3, "wait_ms": 20, "jitter_ms": 50},
                                            NoEvents(), None)
    assert "the jitter of up to 50 ms either way taking every 20 ms wait down to 0 ms" in summary["text"], summary
    assert "no wait asked for" not in summary["text"] and "×" not in summary["text"], summary


async def test_one_cook_with_one_request_says_there_is_nothing_to_overlap():
    summary = await _summary("one-cook", {"mode": "concurrent", "requests": 1, "wait_ms": 100, "jitter_ms": 0})
    assert "×" not in summary["text"] and "nothing to overlap" in summary["text"], summary["text"]
    assert summary["text"].startswith("One request (concurrent) took")


async def test_gather_with_one_call_prints_no_ratio():
    summary = await _summary("gather-vs-loop", {"mode": "gather", "calls": 1})
    assert "×" not in summary["text"] and "1 answered: nothing to overlap" in summary["text"], summary["text"]
