"""The HTTP handler keeps its request threads: no thread started per request, none shared by two at once."""
import asyncio
import threading

from asgiref.sync import sync_to_async

from coursesite.asgi import django_asgi_app
from coursesite.request_threads import KeptThreadsASGIHandler

HTTP_SCOPE = {"type": "http", "method": "GET", "path": "/hello", "headers": []}


class RecordingHandler(KeptThreadsASGIHandler):
    """The site's handler, whose request is one sync call: `work(scope)` on the request's thread."""

    def __init__(self, work):
        super().__init__()
        self.work = work

    async def handle(self, scope, receive, send):
        await sync_to_async(self.work)(scope)


def thread_of(record):
    def work(scope):
        record.append(threading.get_ident())
    return work


def test_the_site_serves_http_with_the_kept_threads_handler():
    assert isinstance(django_asgi_app, KeptThreadsASGIHandler)


async def test_requests_one_after_another_run_on_one_kept_thread():
    idents: list[int] = []
    handler = RecordingHandler(thread_of(idents))
    await handler(HTTP_SCOPE, None, None)  # the first request starts the thread
    threads_before = threading.active_count()
    for _ in range(30):
        await handler(HTTP_SCOPE, None, None)
    assert threading.active_count() == threads_before  # Django's own handler starts two threads per request
    assert len(set(idents)) == 1 and idents[0] != threading.get_ident()


async def test_requests_at_the_same_time_never_share_a_thread():
    both_inside = threading.Barrier(2, timeout=5)  # on a shared thread the second could never arrive
    idents: list[int] = []

    def work(scope):
        idents.append(threading.get_ident())
        both_inside.wait()

    handler = RecordingHandler(work)
    await asyncio.gather(handler(HTTP_SCOPE, None, None), handler(HTTP_SCOPE, None, None))
    assert len(set(idents)) == 2


async def test_a_thread_still_busy_for_a_cancelled_request_is_not_lent_until_it_finishes():
    release, started = threading.Event(), threading.Event()
    idents: list[int] = []

    def work(scope):
        idents.append(threading.get_ident())
        if scope.get("hold"):
            started.set()
            release.wait(5)

    handler = RecordingHandler(work)
    held = asyncio.ensure_future(handler({**HTTP_SCOPE, "hold": True}, None, None))
    await asyncio.to_thread(started.wait, 5)
    held.cancel()  # the reader went away; its sync call carries on in its thread
    await asyncio.gather(held, return_exceptions=True)
    await handler(HTTP_SCOPE, None, None)
    assert idents[1] != idents[0]  # the next request did not queue behind the unfinished call
    release.set()
    for _ in range(100):  # the held thread comes back once its call has returned
        if len(handler.request_threads.idle) == 2:
            break
        await asyncio.sleep(0.01)
    assert len(handler.request_threads.idle) == 2
