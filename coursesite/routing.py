"""Websocket routes: the demo socket, and one step socket per demo that declares a step mode."""
from django.urls import path

from demos.consumers import DemoConsumer
from demos.registry import step_consumer, step_modes

websocket_urlpatterns = [
    path("ws/demos/", DemoConsumer.as_asgi()),
    *(path(f"ws/steps/{slug}/", step_consumer(slug).as_asgi()) for slug in step_modes()),
]
