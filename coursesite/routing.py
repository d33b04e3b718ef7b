"""Websocket routes."""
from django.urls import path

from demos.consumers import DemoConsumer
from demos.step_consumer import StepConsumer

websocket_urlpatterns = [
    path("ws/demos/", DemoConsumer.as_asgi()),
    path("ws/steps/", StepConsumer.as_asgi()),
]
