"""The one place that publishes a worker run's messages to the channel layer.

Worker-placed runs publish their messages to a group per run
(`coursesite.keys.run_group`); the socket that started the run listens on it.
The layer is made lazily, never at import, so importing this module opens no
Redis connection.
"""
from __future__ import annotations

from typing import Any

from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers

from coursesite import keys
from demos.base import ProtocolMessage


class RunSender:
    """Publishes one run's protocol messages to its group, from one event loop.

    It builds a private layer instance rather than sharing the process-wide
    one, so closing its connections at the end of a run cannot cut off anyone
    else's (a worker process may stream several runs from several threads).
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._layer: Any = None

    @property
    def layer(self) -> Any:
        if self._layer is None:
            self._layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        return self._layer

    async def send(self, message: ProtocolMessage) -> None:
        """Publish one protocol message for the reader."""
        await self.layer.group_send(keys.run_group(self.run_id), {"type": "run.message", "message": message})

    async def send_alive(self) -> None:
        """A heartbeat for the socket's watchdog; never forwarded to the reader."""
        await self.layer.group_send(keys.run_group(self.run_id), {"type": "run.alive", "run": self.run_id})

    async def send_unrecorded(self) -> None:
        """The run ended but its ending could not be recorded: the socket ends it from its side."""
        await self.layer.group_send(keys.run_group(self.run_id), {"type": "run.unrecorded", "run": self.run_id})

    async def close(self) -> None:
        """Close the private layer's connections."""
        if self._layer is not None and hasattr(self._layer, "close_pools"):
            await self._layer.close_pools()
