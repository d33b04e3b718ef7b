"""Placeholder guarded consumer base (the real one arrives from the h-tests branch)."""
from __future__ import annotations

import json
import logging
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from demos.limits import MessageBudget

logger = logging.getLogger("demos.sockets")


class ClientError(Exception):
    def __init__(self, code: str, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code = code
        self.extra = extra


class GuardedJsonConsumer(AsyncJsonWebsocketConsumer):
    max_frame_chars = 16 * 1024

    async def websocket_connect(self, message):
        self.budget = MessageBudget()
        await super().websocket_connect(message)

    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        size = len(text_data) if text_data is not None else len(bytes_data or b"")
        if size > self.max_frame_chars:
            await self.close(code=4413)
            return
        verdict = self.budget.spend()
        if verdict == "close":
            await self.close(code=4429)
            return
        if verdict == "refuse":
            await self.send_error(ClientError("rate_limited", "Too many messages at once.", retry_after_s=1))
            return
        try:
            content = json.loads(text_data) if text_data is not None else None
        except (ValueError, RecursionError):
            content = None
        try:
            if not isinstance(content, dict):
                raise ClientError("bad_message", "A message must be a JSON object with a `type`.")
            await self.receive_json(content)
        except ClientError as error:
            await self.send_error(error)

    async def send_error(self, error: ClientError) -> None:
        await self.safe_send({"type": "error", "code": error.code, "message": str(error), **error.extra})

    async def safe_send(self, message) -> None:
        try:
            await self.send_json(message)
        except Exception:
            logger.debug("dropped a message for a closed socket")
