"""Websocket routes."""
from django.urls import path

from demos.consumers import DemoConsumer

websocket_urlpatterns = [
    path("ws/demos/", DemoConsumer.as_asgi()),
]
