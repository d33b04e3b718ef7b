"""Run records written from the event loop: batched, yet each run ends exactly once.

Against the real PostgreSQL, through the same functions the websocket uses.
Many calls at once land in shared statements (coursesite.loop_db.Batched);
these tests check what each caller gets back and what the table holds.
"""
import asyncio

import pytest

from coursesite import loop_db
from demos.models import Run
from demos.services import run_create_on_loop, run_finish_on_loop, run_finish_with_events_on_loop

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
async def records():
    yield
    await loop_db.close_for_this_loop()


async def test_three_hundred_runs_started_at_once_are_each_recorded_with_their_own_parameters(records):
    run_ids = await asyncio.gather(*(
        run_create_on_loop(demo_slug="one-cook", placement="loop", params={"requests": index}) for index in range(300)
    ))
    assert len(set(run_ids)) == 300
    stored = {str(run.id): run async for run in Run.objects.filter(id__in=run_ids)}
    assert [stored[run_id].params for run_id in run_ids] == [{"requests": index} for index in range(300)]
    assert {run.status for run in stored.values()} == {"running"}


async def test_runs_ended_at_once_keep_each_their_own_status_summary_and_events(records):
    run_ids = await asyncio.gather(*(run_create_on_loop(demo_slug="one-cook", placement="loop", params={}) for _ in range(50)))
    endings = [
        run_finish_with_events_on_loop(run_id=run_id, status="succeeded", summary={"n": index},
                                       events_json=f'[{{"t": {index}, "kind": "log"}}]', dropped=index)
        if index % 2 else
        run_finish_on_loop(run_id=run_id, status="cancelled", summary={"n": index})
        for index, run_id in enumerate(run_ids)
    ]
    assert await asyncio.gather(*endings) == [True] * 50
    for index, run_id in enumerate(run_ids):
        run = await Run.objects.aget(id=run_id)
        assert run.summary == {"n": index} and run.finished_at is not None
        if index % 2:
            assert (run.status, run.events, run.events_dropped) == ("succeeded", [{"t": index, "kind": "log"}], index)
        else:
            assert (run.status, run.events, run.events_dropped) == ("cancelled", [], 0)


async def test_a_run_ended_twice_at_once_records_one_ending_and_tells_the_other_it_lost(records):
    run_id = await run_create_on_loop(demo_slug="one-cook", placement="loop", params={})
    by_reader, by_itself = await asyncio.gather(
        run_finish_on_loop(run_id=run_id, status="cancelled", summary={"text": "Stopped by the reader."}),
        run_finish_with_events_on_loop(run_id=run_id, status="succeeded", summary={"text": "done"}, events_json="[]", dropped=0),
    )
    assert sorted([by_reader, by_itself]) == [False, True]
    run = await Run.objects.aget(id=run_id)
    assert run.status == ("cancelled" if by_reader else "succeeded")
    # Ending it again later changes nothing.
    assert await run_finish_on_loop(run_id=run_id, status="failed", summary={}) is False
    assert (await Run.objects.aget(id=run_id)).status == run.status


async def test_ending_a_run_that_does_not_exist_reports_false(records):
    assert await run_finish_on_loop(run_id="00000000-0000-0000-0000-000000000000", status="failed", summary={}) is False
