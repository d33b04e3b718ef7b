"""Readers' pages ask Redis for the content version once however many arrive together when the memo expires."""
import asyncio
import threading

from lessons import services


async def test_requests_arriving_together_share_one_read_of_the_version(monkeypatch):
    reads = []
    answer = threading.Event()

    def slow_read():
        reads.append(threading.get_ident())
        answer.wait(5)  # Redis answering while more readers arrive
        return 7

    monkeypatch.setattr(services, "content_version", slow_read)
    monkeypatch.setattr(services, "_version_memo", services._VersionMemo())  # expired
    readers = [asyncio.ensure_future(services.areader_page_key(path=f"/page/{n}/")) for n in range(20)]
    await asyncio.sleep(0.05)
    answer.set()
    keys = await asyncio.gather(*readers)
    assert len(reads) == 1
    assert keys == [f"lessons:page:7:/page/{n}/" for n in range(20)]


async def test_a_failed_read_reaches_every_waiting_reader_and_the_next_one_asks_again(monkeypatch):
    calls = []

    def unreachable():
        calls.append(1)
        raise OSError("Redis is down")

    monkeypatch.setattr(services, "content_version", unreachable)
    monkeypatch.setattr(services, "_version_memo", services._VersionMemo())
    results = await asyncio.gather(*(services.acontent_version() for _ in range(5)), return_exceptions=True)
    assert all(isinstance(result, OSError) for result in results)
    await asyncio.gather(services.acontent_version(), return_exceptions=True)
    assert len(calls) == 2
