"""One guarded JSON websocket base for every consumer the site serves.

A public, anonymous socket meets every kind of frame. `GuardedJsonConsumer`
applies the same rules on each route before a handler sees anything: a frame
size cap, a per-socket message budget, JSON decoding that refuses deep
nesting before the parser can recurse, and one shape for every error. A
handler raises `ClientError` for a mistake the client made; any other
exception is a server bug, logged once and answered `internal`, and the
socket stays open. The server only closes a socket with application codes
(4000-4999), each announced by an `error` message when the socket still
takes one.

Every socket also holds a lease in its client address's cap for its route
(`lease_kind`, `sockets_per_address()`): a handshake over the cap is refused
before accept (the client sees HTTP 403), and the lease is given back on every
way out, a crashed consumer included (`__call__`'s `finally`).
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Awaitable, Mapping
from typing import Any

from channels.generic.websocket import AsyncJsonWebsocketConsumer

from demos.base import ErrorCode, ErrorMessage
from demos.limits import AddressLease, MessageBudget

logger = logging.getLogger("demos.sockets")

# Application close codes: 4000 + the HTTP status that means the same thing.
CLOSE_TOO_BIG = 4413
CLOSE_TOO_MANY_MESSAGES = 4429
# Refusing a handshake before accept: Daphne turns any close then into HTTP 403.
CLOSE_REFUSED = 4429

# Strings may hold brackets; they are removed before the nesting is counted.
_JSON_STRING = re.compile(r'"(?:[^"\\]|\\.)*"', re.DOTALL)
_JSON_BRACKET = re.compile(r"[\[\]{}]")


class ClientError(Exception):
    """Something the client did wrong, reported to it as an `error` message with a code."""

    def __init__(self, code: ErrorCode, message: str, **extra: Any) -> None:
        super().__init__(message)
        self.code: ErrorCode = code
        self.extra = extra


def json_nesting_depth(text: str) -> int:
    """How deeply the arrays and objects of a JSON text nest, counted without parsing it.

    Linear in the text's length and never recursive, so a frame of ten
    thousand opening brackets costs one pass instead of the parser's stack.
    """
    depth = deepest = 0
    for bracket in _JSON_BRACKET.findall(_JSON_STRING.sub("", text)):
        if bracket in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def address_of(scope: Mapping[str, Any]) -> str:
    """The client's address as the server saw it (behind a trusted proxy, coursesite.proxy has rewritten it)."""
    client = scope.get("client")
    return str(client[0]) if client else "unknown"


async def finish_even_if_cancelled(work: Awaitable[Any]) -> None:
    """Await `work` to its end even if this task is cancelled meanwhile (Daphne cancels consumers at shutdown)."""
    future = asyncio.ensure_future(work)
    while not future.done():
        try:
            await asyncio.shield(future)
        except asyncio.CancelledError:
            continue


class GuardedJsonConsumer(AsyncJsonWebsocketConsumer):
    """A JSON websocket consumer whose frames are checked before `receive_json` runs.

    Subclasses implement `receive_json(content)` (content is always a dict)
    and raise `ClientError` for what the client got wrong; they name their
    route's per-address cap with `lease_kind` and `sockets_per_address()`.
    """

    lease_kind = "sockets"

    # A protocol message is a few hundred characters; anything past this is abuse.
    max_frame_chars = 16 * 1024
    # The protocols nest three levels at most; the parser recurses once per level.
    max_json_depth = 32

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.message_budget = MessageBudget()
        self.closing = False
        self.socket_lease: AddressLease | None = None

    def sockets_per_address(self) -> int:
        """How many sockets of this route one client address may hold open."""
        raise NotImplementedError

    @property
    def client_address(self) -> str:
        return address_of(self.scope)

    async def websocket_connect(self, message: dict[str, Any]) -> None:
        """Take a place in the address's socket cap before the subclass's `connect` sees the socket."""
        self.socket_lease = AddressLease(self.lease_kind, self.client_address, self.sockets_per_address())
        if await self.socket_lease.acquire() is not None:
            await self.close(code=CLOSE_REFUSED)  # before accept: the client sees HTTP 403
            return
        await super().websocket_connect(message)

    async def websocket_disconnect(self, message: dict[str, Any]) -> None:
        try:
            await super().websocket_disconnect(message)
        finally:
            # The address's place is free as soon as the socket is, not after the channel
            # layer's pop under way ends (up to a second: docs/adr/0019).
            if self.socket_lease is not None:
                await self.socket_lease.release()

    async def release_resources(self) -> None:
        """Give back what the socket holds (runs, sessions); called once on every way out. Idempotent."""

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        try:
            await super().__call__(scope, receive, send)
        finally:
            # Every way out, a handler's crash or Daphne's cancel included, gives everything back.
            await finish_even_if_cancelled(self._give_back())

    async def _give_back(self) -> None:
        try:
            await self.release_resources()
        except Exception:
            logger.exception("%s could not release what its socket held", type(self).__name__)
        finally:
            if self.socket_lease is not None:
                await self.socket_lease.release()

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None, **kwargs: Any) -> None:
        """Check one frame against the size cap and the budget, decode it, and hand it on."""
        if self.closing:
            return  # frames already in flight when this socket was closed
        size = len(text_data) if text_data is not None else len(bytes_data or b"")
        if size > self.max_frame_chars:
            await self.send_error(ClientError(
                "too_big", f"A frame may hold at most {self.max_frame_chars} characters; closing this connection."))
            await self.close_with(CLOSE_TOO_BIG)
            return
        verdict = self.message_budget.spend()
        if verdict == "close":
            await self.send_error(ClientError("rate_limited", "Too many messages; closing this connection."))
            await self.close_with(CLOSE_TOO_MANY_MESSAGES)
            return
        try:
            if verdict == "refuse":
                raise ClientError("rate_limited", "Too many messages at once; slow down and try again in a second.",
                                  retry_after_s=1)
            await self.receive_json(self.decode_frame(text_data))
        except ClientError as error:
            await self.send_error(error)
        except Exception:
            logger.exception("%s failed on a message", type(self).__name__)
            await self.send_error(ClientError(
                "internal", "Something went wrong on the server with that message; this connection still works."))

    def decode_frame(self, text_data: str | None) -> dict:
        """The frame as a JSON object, or ClientError("bad_message")."""
        if text_data is None:
            raise ClientError("bad_message", "Send JSON text frames, not binary.")
        if json_nesting_depth(text_data) > self.max_json_depth:
            raise ClientError("bad_message", f"That frame nests deeper than {self.max_json_depth} levels.")
        try:
            content = json.loads(text_data)
        except RecursionError:  # the depth count is the guard; this is its backstop
            raise ClientError("bad_message", "That frame nests too deeply.") from None
        except ValueError:
            raise ClientError("bad_message", "That frame is not valid JSON.") from None
        if not isinstance(content, dict):
            raise ClientError("bad_message", "A message must be a JSON object with a `type`.")
        return content

    async def close_with(self, code: int) -> None:
        """Close this socket with an application code; later frames are ignored."""
        self.closing = True
        await self.close(code=code)

    async def send_error(self, error: ClientError) -> None:
        """Report a ClientError to this socket as an `error` message."""
        message: ErrorMessage = {"type": "error", "code": error.code, "message": str(error)}
        if "ref" in error.extra:
            message["ref"] = error.extra["ref"]
        if "run" in error.extra:
            message["run"] = error.extra["run"]
        if "retry_after_s" in error.extra:
            message["retry_after_s"] = error.extra["retry_after_s"]
        await self.safe_send(message)

    async def safe_send(self, message: Mapping[str, Any]) -> None:
        """Send a message unless the socket has gone; a closed socket is not an error here."""
        try:
            await self.send_json(message)
        except Exception as error:
            # Said out loud: a message the server could not send (too big for the protocol, say)
            # once vanished here at debug level, and readers silently lost events batches.
            logger.warning("could not send a %s message: %s: %s", message.get("type"), error.__class__.__name__, error)
