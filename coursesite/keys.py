"""Every Redis key and channel-layer group name the site uses, in one place.

Keys the engine owns are named here; a demo package that keeps keys of its
own builds them with `demo_key(slug, ...)`, so they share one namespace and
the engine never spells a demo's name.
"""
from __future__ import annotations

PREFIX = "coursesite"
# The channel layer's own prefix (channels-redis puts its keys under it).
CHANNEL_LAYER_PREFIX = f"{PREFIX}:asgi"
# Key prefix of Django's Redis cache (the content version lives there).
CACHE_KEY_PREFIX = PREFIX
# The version every reader page is cached under; each author's save bumps it.
CONTENT_VERSION = "lessons:content-version"


def run_group(run_id: str) -> str:
    """The channel-layer group a worker run's messages are published to."""
    return f"demo-run.{run_id}"


def run_cancel(run_id: str) -> str:
    """Present while a worker run has been asked to stop."""
    return f"{PREFIX}:demo-cancel:{run_id}"


def run_ending_pending(run_id: str) -> str:
    """Present while a web process still retries writing a run's ending; the sweeper leaves that run alone."""
    return f"{PREFIX}:demo-ending-pending:{run_id}"


def runs_in_flight(placement: str) -> str:
    """Sorted set of the runs in flight on one placement, scored by their deadlines."""
    return f"{PREFIX}:demo-inflight:{placement}"


def runs_of_address(placement: str, address: str) -> str:
    """Sorted set of one client address's runs in flight on one placement, scored by their deadlines."""
    return f"{PREFIX}:demo-inflight-by-address:{placement}:{address}"


def run_address(run_id: str) -> str:
    """The client address a run in flight was started from (so its slot can be given back)."""
    return f"{PREFIX}:demo-run-address:{run_id}"


def address_leases(kind: str, address: str) -> str:
    """Sorted set of one address's live sockets or sessions of one kind, scored by lease deadline."""
    return f"{PREFIX}:demo-leases:{kind}:{address}"


def demo_key(slug: str, *parts: str) -> str:
    """A key owned by one demo package: `coursesite:demo:<slug>:<parts...>`."""
    return ":".join((PREFIX, "demo", slug, *parts))


def prediction_rate(kind: str, who: str, window: int) -> str:
    """Counter of prediction posts from one reader token hash or one client address (`kind`) in one time window."""
    return f"{PREFIX}:prediction-rate:{kind}:{who}:{window}"
