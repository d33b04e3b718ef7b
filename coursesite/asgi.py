"""ASGI entry point: HTTP through Django, websockets through Channels."""
import gc
import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coursesite.settings.prod")
# Set Django up first (as get_asgi_application does), so routing may import models.
django.setup(set_prefix=False)

from coursesite.request_threads import KeptThreadsASGIHandler  # noqa: E402

# Django's HTTP handler, its request threads kept between requests (coursesite/request_threads.py).
django_asgi_app = KeptThreadsASGIHandler()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from coursesite import autobahn_logging, server_limits  # noqa: E402
from coursesite.origins import SameOriginValidator  # noqa: E402
from coursesite.proxy import TrustedProxyMiddleware  # noqa: E402
from coursesite.routing import websocket_urlpatterns  # noqa: E402

autobahn_logging.install()
server_limits.install()

# Everything loaded so far lives as long as the process: take it out of the
# cyclic collector's view, so full collections stay short on the event loop.
gc.collect()
gc.freeze()
# Python's default collection thresholds stay: raising them took a 10,000-request loop demo's
# overhead down but let 10,000 connect/disconnect cycles grow Daphne's memory
# by 9 % or more against 0-2 % (docs/benchmark-notes.md).

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        # Demo sockets are anonymous and public: no session or user middleware,
        # whose user lookup would cost every handshake a trip to the sync thread.
        # The Origin must match scheme, host and port (channels' own validator checks the host only).
        "websocket": SameOriginValidator(URLRouter(websocket_urlpatterns)),
    }
)
# The real client address (from X-Forwarded-For, only when the peer is a trusted proxy) for every cap and check below.
application = TrustedProxyMiddleware(application)
