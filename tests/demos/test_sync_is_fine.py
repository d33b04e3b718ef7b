"""sync-is-fine: on pure computation async adds cost and no speed; dependent steps take their sum however arranged."""

import pytest

from demos.events import EventRecorder
from demos.library import sync_is_fine
from demos.params import ParamError, validate_params
from demos.supervisor import RunEmitter
from lessons.rendering import render_lesson_markdown
from lessons.services import shipped_courses

LESSON = "09-when-sync-is-right.md"


def test_at_defaults_async_costs_time_threads_buy_none_and_the_chain_takes_its_sum():
    params = validate_params(sync_is_fine, {})
    recorder = EventRecorder()
    summary = sync_is_fine.run(params, RunEmitter(recorder, time_limit_s=sync_is_fine.time_limit_s))

    assert summary["result"] == sync_is_fine.compute_plain(params["steps"])
    total = summary["total_ms"]
    assert set(total) == {"plain", "async", "to_thread"}
    # An await per step costs something real (about 0.1 µs each on our machine) and never saves time.
    assert total["async"] > total["plain"]
    assert summary["overhead_per_await_us"] > 0
    # One thread does the same work either way: no speed-up from to_thread beyond noise.
    assert total["to_thread"] > 0.7 * total["plain"]

    chain, waits_ms = summary["chain_ms"], summary["chain_waits_ms"]
    assert waits_ms == params["chain_steps"] * params["chain_step_ms"]
    for arrangement in ("in_order", "gathered"):
        assert waits_ms <= chain[arrangement] < waits_ms * 1.5, chain
    assert chain["independent_gathered"] < waits_ms / 2, chain
    assert str(summary["result"]) in summary["text"]
    assert f"{chain['gathered']} ms gathered" in summary["text"]
    lanes = recorder.stored[0]
    assert lanes["kind"] == "lanes" and lanes["count"] == 3 + 3 * params["chain_steps"]


def test_the_async_version_computes_the_same_value():
    import asyncio

    assert asyncio.run(sync_is_fine.compute_async(1_000)) == sync_is_fine.compute_plain(1_000)


def test_bad_params_are_refused():
    for bad in ({"steps": 999}, {"chain_steps": 21}, {"chain_step_ms": 0}, {"mode": "async"}):
        with pytest.raises(ParamError):
            validate_params(sync_is_fine, bad)


def test_the_when_sync_is_right_lesson_embeds_the_demo():
    rendered = render_lesson_markdown((shipped_courses()[0] / LESSON).read_text())
    assert "sync-is-fine" in rendered.demo_slugs
    assert 'data-demo="sync-is-fine"' in rendered.html
