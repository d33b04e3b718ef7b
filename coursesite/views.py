"""Site-wide views that belong to no app."""
from django.db import connection
from django.http import HttpResponse, JsonResponse
from django.views.decorators.cache import never_cache
from redis.exceptions import RedisError

from coursesite.celery import app as celery_app
from coursesite.redis_clients import probe_redis


def _database_state() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception as exc:  # any driver error means "down" to a health check
        return f"error: {exc.__class__.__name__}"


def _redis_state() -> str:
    try:
        probe_redis(timeout_s=1)
        return "ok"
    except RedisError as exc:
        return f"error: {exc.__class__.__name__}"


def _live_workers() -> int:
    try:
        replies = celery_app.control.ping(timeout=0.5)
    except Exception:  # broker down: no worker can be reached
        return 0
    return len(replies or [])


@never_cache
def healthz(request):
    """Report the database, Redis and the live Celery workers; 503 naming the servers that are down.

    Pages keep answering while Redis is down (cached ones from memory), but
    demos do not: an operator watching this sees the outage for as long as it
    lasts, and `make run` restarts an embedded server that died.
    """
    database = _database_state()
    redis = _redis_state()
    workers = _live_workers() if redis == "ok" else 0
    down = [name for name, state in (("database", database), ("redis", redis)) if state != "ok"]
    body = {"database": database, "redis": redis, "celery_workers": workers, "down": down}
    return JsonResponse(body, status=503 if down else 200)


def hello(request):
    """The cheapest possible page: the baseline the benchmarks compare lesson pages with."""
    return HttpResponse("hello\n", content_type="text/plain")
