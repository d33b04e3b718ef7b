"""ASGI entry point: HTTP through Django, websockets through Channels."""
import gc
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "coursesite.settings.prod")
# Build the HTTP app first: it sets up Django so routing may import models.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from coursesite.routing import websocket_urlpatterns  # noqa: E402

# Everything loaded so far lives as long as the process: take it out of the
# cyclic collector's view, so full collections stay short on the event loop.
gc.collect()
gc.freeze()
# A young collection every 700 new objects (the default) means hundreds of
# collections while a demo starts 10,000 tasks, or 1,000 readers connect, and
# survivors promoted by them make full collections frequent. Collecting every
# 50,000 cut one-cook's overhead after the 1,000-viewer load from 1.23-1.37 to
# 1.17-1.25 x its longest wait, and the viewers' p99 from 233-261 to 160-174 ms
# (docs/benchmark-notes.md); each collection stays a few milliseconds.
gc.set_threshold(50_000, 10, 10)

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
    }
)
