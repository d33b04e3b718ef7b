"""The one place that talks to the channel layer about runs.

Worker-placed runs publish their messages to a group per run; the socket that
started the run listens on it. The layer is fetched lazily, never at import,
so importing this module opens no Redis connection.
"""
from __future__ import annotations

from typing import Any

from channels.layers import DEFAULT_CHANNEL_LAYER, channel_layers


def run_group(run_id: str) -> str:
    """The channel-layer group a run's messages are published to."""
    return f"demo-run.{run_id}"


def cancel_key(run_id: str) -> str:
    """The Redis key whose presence asks a worker run to stop."""
    return f"coursesite:demo-cancel:{run_id}"


class RunSender:
    """Publishes one run's protocol messages to its group, from one event loop.

    It builds a private layer instance rather than sharing the process-wide
    one, so closing its connections at the end of a run cannot cut off anyone
    else's (a worker process may stream several runs from several threads).
    """

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id
        self._layer = None

    @property
    def layer(self):
        if self._layer is None:
            self._layer = channel_layers.make_backend(DEFAULT_CHANNEL_LAYER)
        return self._layer

    async def send(self, message: dict[str, Any]) -> None:
        await self.layer.group_send(run_group(self.run_id), {"type": "run.message", "message": message})

    async def send_alive(self) -> None:
        """A heartbeat for the socket's watchdog; never forwarded to the reader."""
        await self.layer.group_send(run_group(self.run_id), {"type": "run.alive", "run": self.run_id})

    async def close(self) -> None:
        if self._layer is not None and hasattr(self._layer, "close_pools"):
            await self._layer.close_pools()
